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
    groups: tuple[str, ...] = ()  # the provider's groups claim (at most 600)

    async def id_token(self) -> str | None:
        """The upstream provider's id_token of this sign-in, read now (so the latest); None for local accounts.

        Token validation never reads it: it is looked up only for `mcp.forwardIdToken` or an app that asks.
        """
        # Imported here: MCP apps import this module in processes that may not set Django up (uvicorn demo:app).
        from mcp_gateway.upstream_id_token import upstream_id_token

        return await upstream_id_token(self.session_id)


def identity_of(scope: Mapping[str, Any]) -> Identity | None:
    """The identity of the request an MCP app is serving (apps read it from their ASGI scope)."""
    return scope.get(SCOPE_KEY)
