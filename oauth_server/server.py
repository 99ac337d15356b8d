"""The oauthlib server: authorization code and refresh token only, with our OAuth extensions registered."""

from collections.abc import Callable
from typing import Any

from oauthlib.oauth2 import WebApplicationServer

from oauth_server.extensions import pkce, resource_indicators, state
from oauth_server.upstream.sessions import capped_seconds

DEFAULT_EXPIRES_IN = 3600


def capped_expires_in(seconds: int) -> Callable[[Any], int]:
    """Access tokens never outlive the sign-in's provider token (muster's capTokenExpiry)."""

    def expires_in(request: Any) -> int:
        return capped_seconds(getattr(request, "upstream_session", None), seconds)

    return expires_in


class MusterServer(WebApplicationServer):
    """No implicit, password, client-credentials or device grants exist here; `plain` PKCE does not either."""

    def __init__(self, request_validator: Any, **kwargs: Any) -> None:
        super().__init__(
            request_validator,
            token_generator=kwargs.get("token_generator"),
            token_expires_in=capped_expires_in(kwargs.get("token_expires_in") or DEFAULT_EXPIRES_IN),
            refresh_token_generator=kwargs.get("refresh_token_generator"),
        )
        for extension in (state, pkce, resource_indicators):  # in this order: the first refusal is the answer
            extension.register(self)
