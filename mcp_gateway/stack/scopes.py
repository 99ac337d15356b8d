"""The /mcp scope check: a token without every scope in `mcp.requiredScopes` gets 403 insufficient_scope."""

from django.conf import settings

from infra.asgi import ASGIApp, Receive, Scope, Send
from mcp_gateway.challenges import insufficient_scope, unauthorized
from mcp_gateway.identity import identity_of


class RequireScopes:
    """Runs after authentication; without an identity (a layer missing) it refuses like a request without a token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = identity_of(scope)
        if identity is None:
            await unauthorized(error=None).send(send)
            return
        if not set(settings.MUSTER_CONFIG.mcp.required_scopes) <= set(identity.scopes):
            await insufficient_scope().send(send)
            return
        await self.app(scope, receive, send)
