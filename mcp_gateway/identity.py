"""Who is calling: the authenticated identity the gateway puts in the ASGI scope of every /mcp request."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SCOPE_KEY = "muster.identity"


@dataclass(frozen=True)
class Identity:
    """A validated bearer token's owner; `session_id` is the token family (one sign-in in one client)."""

    subject: str
    user_id: int
    client_id: str
    scopes: tuple[str, ...]
    session_id: str
    expires: datetime
    id_token: str | None = None  # the upstream provider's, when users sign in there
    groups: tuple[str, ...] = ()  # the provider's groups claim (at most 600)


def identity_of(scope: Mapping[str, Any]) -> Identity | None:
    """The identity of the request an MCP app is serving (apps read it from their ASGI scope)."""
    return scope.get(SCOPE_KEY)
