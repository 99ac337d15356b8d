"""How the site stores tokens, for tests that look them up in the database."""

import hashlib
import uuid

from django.utils import timezone
from oauth2_provider.models import RefreshToken

from oauth_server.models import RefreshGraceCopy


def checksum(token: str) -> str:
    """How tokens are stored: their SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def family_of(tokens: dict[str, str]) -> uuid.UUID:
    """The token family of a token response's refresh token."""
    return RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).token_family


def grace_passed(old_refresh_token: str) -> None:
    """Move the rotated token's grace copy past its expiry, as if the grace period had passed."""
    RefreshGraceCopy.objects.filter(old_token_checksum=checksum(old_refresh_token)).update(expires=timezone.now())
