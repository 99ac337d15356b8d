"""The one parser of `Authorization: Bearer <token>` (RFC 6750 §2.1) for /mcp and /user-tokens."""

from dataclasses import dataclass

from oauth2_provider.utils import parse_bearer_token


@dataclass(frozen=True)
class Credentials:
    """What an Authorization header presents: whether it names the Bearer scheme, and its token if well formed."""

    bearer: bool
    token: str | None


def credentials(authorization: str | None) -> Credentials:
    """The scheme in any case and exactly one token after it (DOT's parser); anything else has no token.

    A header naming Bearer with a missing or malformed token is told apart from one naming no Bearer at all:
    the first is answered `invalid_token`, the second with a bare challenge.
    """
    value = authorization or ""
    scheme = value.split(maxsplit=1)[:1]
    return Credentials(bearer=bool(scheme) and scheme[0].lower() == "bearer", token=parse_bearer_token(value))
