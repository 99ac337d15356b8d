"""`state` (RFC 6749 §4.1.1, §10.12): required, 24 to 512 characters; one too long is never sent back."""

from typing import Any

from oauthlib.common import Request
from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors

STATE_MIN_LENGTH = 24  # muster's floor, lowered for VS Code web
STATE_MAX_LENGTH = 512


class StateTooLongError(errors.FatalClientError):
    """Too long to send back to the client safely: answered with a 400, never redirected or echoed."""

    error = "invalid_request"
    status_code = 400
    description = f"state must be at most {STATE_MAX_LENGTH} characters"


def check_state(request: Request) -> dict[str, Any]:
    """Before consent: a `state` of 24 to 512 characters, as a CSRF defence every client must use."""
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


def register(server: WebApplicationServer) -> None:
    server.auth_grant.custom_validators.pre_auth.append(check_state)
