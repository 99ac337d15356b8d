"""How the site stores tokens, for tests that look them up in the database."""

import hashlib
import uuid

from oauth2_provider.models import RefreshToken


def checksum(token: str) -> str:
    """How tokens are stored: their SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def family_of(tokens: dict[str, str]) -> uuid.UUID:
    """The token family of a token response's refresh token."""
    return RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).token_family
