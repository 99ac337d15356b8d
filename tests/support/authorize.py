"""The one builder of authorization requests, and the redirect URI test clients register."""

import secrets
from urllib.parse import urlencode

REDIRECT_URI = "http://127.0.0.1/callback"


def authorize_url(client_id: str, challenge: str, **overrides: str | None) -> str:
    """A valid authorization request (path and query); pass a value of None to leave a parameter out."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "state": secrets.token_urlsafe(24),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "mcp",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})
