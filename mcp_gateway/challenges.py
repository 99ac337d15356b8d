"""RFC 6750 / RFC 9728 answers for /mcp: 401 and 403 with a Bearer challenge pointing at the resource metadata."""

from django.conf import settings
from oauth2_provider.www_authenticate import build_bearer_challenge

from infra.errors import OAuthError

INVALID_TOKEN = "The access token is invalid, expired or revoked"
INSUFFICIENT_SCOPE = "The access token lacks a scope this endpoint requires"


def resource_metadata_url() -> str:
    return f"{settings.MUSTER_CONFIG.base_url}/.well-known/oauth-protected-resource/mcp"


def _challenge(error: str | None, description: str | None) -> dict[str, str]:
    params = {"resource_metadata": resource_metadata_url()}
    if error:
        params.update(error=error, error_description=description or "")
    if required := settings.MUSTER_CONFIG.mcp.required_scopes:
        params["scope"] = " ".join(required)
    return {"WWW-Authenticate": build_bearer_challenge(None, oauth2_error=params, resource_metadata_url=None)}


def unauthorized(
    error: str | None = "invalid_token", description: str = INVALID_TOKEN, status: int = 401
) -> OAuthError:
    """No token (no `error`), a refused token (`invalid_token`), or a malformed request (`invalid_request`, 400)."""
    if error is None:
        return OAuthError("unauthorized", "Bearer token required", status, _challenge(None, None))
    return OAuthError(error, description, status, _challenge(error, description))


def insufficient_scope() -> OAuthError:
    return OAuthError(
        "insufficient_scope", INSUFFICIENT_SCOPE, 403, _challenge("insufficient_scope", INSUFFICIENT_SCOPE)
    )
