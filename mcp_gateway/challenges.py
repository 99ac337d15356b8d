"""RFC 6750 / RFC 9728 answers for /mcp: 401 and 403 with a Bearer challenge pointing at the resource metadata."""

import json

from django.conf import settings
from oauth2_provider.www_authenticate import build_bearer_challenge

from mcp_gateway.responses import Reply

INVALID_TOKEN = "The access token is invalid, expired or revoked"


def resource_metadata_url() -> str:
    return f"{settings.MUSTER_CONFIG.base_url}/.well-known/oauth-protected-resource/mcp"


def _challenge(error: str | None, description: str | None) -> str:
    params = {"resource_metadata": resource_metadata_url()}
    if error:
        params.update(error=error, error_description=description or "")
    if required := settings.MUSTER_CONFIG.mcp.required_scopes:
        params["scope"] = " ".join(required)
    return build_bearer_challenge(None, oauth2_error=params, resource_metadata_url=None)


def unauthorized(error: str | None = "invalid_token", description: str = INVALID_TOKEN, status: int = 401) -> Reply:
    """No token (no `error`), a refused token (`invalid_token`), or a malformed request (`invalid_request`, 400)."""
    body = {"error": error or "unauthorized", "error_description": description if error else "Bearer token required"}
    return Reply(status, json.dumps(body).encode(), [(b"www-authenticate", _challenge(error, description).encode())])


def insufficient_scope() -> Reply:
    description = "The access token lacks a scope this endpoint requires"
    body = json.dumps({"error": "insufficient_scope", "error_description": description}).encode()
    return Reply(403, body, [(b"www-authenticate", _challenge("insufficient_scope", description).encode())])
