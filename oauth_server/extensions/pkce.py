"""PKCE (RFC 7636): S256 for every client, confidential included; its failures are audited.

oauthlib compares the verifier with the stored challenge (§4.6). Only S256 challenges are ever stored:
`check_challenge` refuses any other method at the authorization endpoint, before consent and again on the
consent form, so oauthlib's `plain` comparison is never reached.
"""

import re
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256

from infra import audit

S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # §4.2: base64url of a SHA-256, no padding
CODE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # §4.1


def check_challenge(request: Request) -> dict[str, Any]:
    """§4.3, §4.4.1: a well-formed S256 `code_challenge`, checked before any consent."""
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


def check_verifier(request: Request) -> None:
    """§4.1: a present verifier is 43 to 128 characters of the unreserved alphabet (oauthlib refuses a missing one)."""
    if request.code_verifier is not None and not CODE_VERIFIER.match(request.code_verifier):
        raise errors.InvalidGrantError(request=request)


class PkceAudit(OAuth2Validator):
    """§4.6: a verifier that does not match the stored challenge is recorded as a PKCE failure."""

    def get_code_challenge(self, code: str, request: Request) -> str | None:
        challenge = super().get_code_challenge(code, request)
        verifier = request.code_verifier
        if challenge and verifier and not code_challenge_method_s256(verifier, challenge):
            audit.record("pkce_failure", "failure", client_id=request.client_id, stage="token")
        return challenge


def register(server: WebApplicationServer) -> None:
    server.auth_grant.custom_validators.pre_auth.append(check_challenge)
    server.auth_grant.custom_validators.pre_token.append(check_verifier)
