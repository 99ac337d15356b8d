"""Request rules oauthlib leaves to us: state length, PKCE S256 and verifier shape, RFC 8707 resource."""

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from oauth2_provider.models import Grant
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from infra import audit
from oauth_server.resources import is_mcp_resource

STATE_MIN_LENGTH = 24
STATE_MAX_LENGTH = 512
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
CODE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


class StateTooLongError(errors.FatalClientError):
    """Too long to send back to the client safely: answered with a 400, never redirected or echoed."""

    error = "invalid_request"
    status_code = 400
    description = f"state must be at most {STATE_MAX_LENGTH} characters"


class InvalidTargetError(errors.OAuth2Error):
    """RFC 8707 §2: the requested resource is not one this server issues tokens for."""

    error = "invalid_target"
    status_code = 400
    description = "resource must be this server's MCP endpoint"


def check_state(request: Request) -> dict[str, Any]:
    """`state` is required, 24 to 512 characters (muster's floor, lowered for VS Code web)."""
    state = request.state or ""
    if len(state) > STATE_MAX_LENGTH:
        request.state = None
        raise StateTooLongError(request=request)
    if len(state) < STATE_MIN_LENGTH:
        raise errors.InvalidRequestError(
            description=f"state is required and must be {STATE_MIN_LENGTH} to {STATE_MAX_LENGTH} characters",
            request=request,
        )
    return {}


def check_pkce(request: Request) -> dict[str, Any]:
    """PKCE with S256 for every client, confidential included, checked before any consent."""
    if not request.code_challenge:
        problem = "code_challenge is required (PKCE, S256)"
    elif request.code_challenge_method != "S256":
        problem = "code_challenge_method must be S256"
    elif not S256_CHALLENGE.match(request.code_challenge):
        problem = "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"
    else:
        return {}
    audit.record("pkce_failure", "failure", client_id=request.client_id, stage="authorize", problem=problem)
    raise errors.InvalidRequestError(description=problem, request=request)


def check_resource(request: Request) -> dict[str, Any]:
    """Every requested `resource` must canonicalise to this server's MCP resource."""
    if not all(is_mcp_resource(value) for value in requested_resources(request)):
        audit.record("resource_mismatch", "failure", client_id=request.client_id, stage="authorize")
        raise InvalidTargetError(request=request)
    return {}


def requested_resources(request: Request) -> list[str]:
    """The `resource` values: the consent form passes a list, a GET carries them (repeatable) in the query."""
    value = getattr(request, "resource", None)
    if isinstance(value, list):
        return value
    return [v for k, v in parse_qsl(urlsplit(request.uri).query, keep_blank_values=True) if k == "resource"]


def check_code_verifier(request: Request) -> None:
    """RFC 7636 §4.1: a present verifier is 43 to 128 characters of the unreserved alphabet."""
    if request.code_verifier is not None and not CODE_VERIFIER.match(request.code_verifier):
        raise errors.InvalidGrantError(request=request)


def check_token_resource(request: Request) -> None:
    """At /token: every `resource` asked for, and the one the code or refresh token carries, is the MCP resource."""
    asked = [value for key, value in (request.decoded_body or []) if key == "resource"]
    if request.grant_type == "authorization_code":
        grant = Grant.objects.filter(code=request.code, application=request.client).values_list("resource", flat=True)
        bound = grant.first() or []
    else:
        bound = request.refresh_token_instance.resource or []
    if not all(is_mcp_resource(value) for value in [*asked, *bound]):
        audit.record("resource_mismatch", "failure", client_id=request.client_id, stage="token")
        raise InvalidTargetError(request=request)
