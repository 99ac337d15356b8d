"""The oauthlib server: authorization code and refresh token only, PKCE S256 only, our request rules."""

from collections.abc import Callable
from typing import Any

from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256

from oauth_server import request_rules
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
        self.auth_grant._code_challenge_methods = {"S256": code_challenge_method_s256}
        self.auth_grant.custom_validators.pre_auth.extend(
            [request_rules.check_state, request_rules.check_pkce, request_rules.check_resource]
        )
        self.auth_grant.custom_validators.pre_token.append(request_rules.check_code_verifier)
        for grant in (self.auth_grant, self.refresh_grant):
            grant.custom_validators.post_token.append(request_rules.check_token_resource)
