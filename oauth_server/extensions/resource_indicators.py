"""Resource indicators (RFC 8707): every code and token is bound to the MCP resource, the one audience we serve.

A request may name the MCP resource, in any spelling (canonicalised: case of scheme and host, trailing slash),
and nothing else (§2, `invalid_target`). Each endpoint checks once what it was sent, then binds the request to
the canonical resource: DOT stores `request.resource` on the code (authorization endpoint) and on the tokens
(token endpoint). A refresh token must itself be bound to the MCP resource (it outlives a change of
`resourceIdentifier`); DOT loaded it for us. A code, which DOT does not load onto the request, is held to its
binding by DOT's own resource step when the tokens are saved (`invalid_target` too, audited by `ResourceAudit`).
"""

from collections.abc import Callable
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors

from infra import audit
from oauth_server.resources import is_mcp_resource, mcp_resource


class InvalidTargetError(errors.OAuth2Error):
    """§2: the requested resource is not one this server issues tokens for."""

    error = "invalid_target"
    status_code = 400
    description = "resource must be this server's MCP endpoint"


def asked_at_authorization(request: Request) -> list[str]:
    """Every `resource` of the query (§2: repeatable); on the consent form DOT passes them as a list."""
    if isinstance(request.resource, list):
        return request.resource
    return [value for key, value in request.uri_query_params if key == "resource"]


def asked_at_token(request: Request) -> list[str]:
    """Every `resource` of the token request body (§2: repeatable), and those the refresh token presented carries."""
    asked = [value for key, value in request.decoded_body or [] if key == "resource"]
    refresh_token = getattr(request, "refresh_token_instance", None)  # DOT's, set when it validated the token
    return [*asked, *(refresh_token.resource or [] if refresh_token is not None else [])]


def binder(stage: str, asked: Callable[[Request], list[str]]) -> Callable[[Request], dict[str, str]]:
    """The hook for one endpoint: check what the request asks for, then bind it to the MCP resource."""

    def bind_to_mcp_resource(request: Request) -> dict[str, str]:
        if not all(is_mcp_resource(value) for value in asked(request)):
            audit.record("resource_mismatch", "failure", client_id=request.client_id, stage=stage)
            raise InvalidTargetError(request=request)
        request.resource = [mcp_resource()]
        return {}

    return bind_to_mcp_resource


class ResourceAudit(OAuth2Validator):
    """A code bound to another resource, refused by DOT as the tokens are saved, is audited like every mismatch."""

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().save_bearer_token(token, request, *args, **kwargs)
        except errors.OAuth2Error as error:
            if error.error == InvalidTargetError.error:
                audit.record("resource_mismatch", "failure", client_id=request.client_id, stage="token")
            raise


def register(server: WebApplicationServer) -> None:
    server.auth_grant.custom_validators.pre_auth.append(binder("authorize", asked_at_authorization))
    at_token = binder("token", asked_at_token)
    for grant in (server.auth_grant, server.refresh_grant):
        grant.custom_validators.post_token.append(at_token)
