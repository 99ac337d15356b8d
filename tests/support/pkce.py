"""PKCE pairs as a client makes them (RFC 7636, S256)."""

import base64
import hashlib
import secrets


def pkce_pair() -> tuple[str, str]:
    """A fresh (code verifier, S256 code challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge
