"""A replayed authorization code revokes the tokens that code issued (OAuth 2.1 §4.1.3, RFC 6749 §4.1.2)."""

import hashlib

from django.core.cache import cache

# Long enough to outlive any code: codes expire after a minute, used ones are remembered for ten.
REMEMBER_SECONDS = 600


def _key(code: str) -> str:
    return "code-used:" + hashlib.sha256(code.encode()).hexdigest()


def remember_exchange(code: str, family: str) -> None:
    """Record which token family a code was exchanged for (keyed by the code's hash, never the code)."""
    cache.set(_key(code), family, timeout=REMEMBER_SECONDS)


def family_issued_by(code: str) -> str | None:
    """The family a code already issued, when the code is being presented again."""
    return cache.get(_key(code))
