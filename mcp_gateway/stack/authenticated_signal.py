"""Sends the `authenticated` signal (muster's onAuthenticated) for each request that reaches the MCP app."""

from infra.asgi import ASGIApp, Receive, Scope, Send
from mcp_gateway.identity import identity_of
from mcp_gateway.signals import authenticated


class AuthenticatedSignal:
    """Receivers get `identity`; without receivers this costs a dictionary lookup."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await authenticated.asend(sender=AuthenticatedSignal, identity=identity_of(scope))
        await self.app(scope, receive, send)
