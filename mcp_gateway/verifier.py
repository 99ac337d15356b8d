"""What every bearer-token check of the gateway provides: a token in, the caller's Identity (or None) out."""

from typing import Protocol

from mcp_gateway.identity import Identity


class TokenVerifier(Protocol):
    """Checks a bearer token (this server's access tokens today; a trusted issuer's tokens may follow)."""

    async def verify(self, token: str) -> Identity | None:
        """The identity behind `token`, or None when it must be refused."""
        ...
