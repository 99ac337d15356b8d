"""The /mcp Origin check and CORS: preflights, a 403 for foreign origins, CORS headers on every other answer."""

from infra.asgi import ASGIApp, Receive, Scope, Send, adding_headers, header
from infra.errors import OAuthError
from mcp_gateway import origins

FOREIGN_ORIGIN = OAuthError("forbidden", "This Origin may not use the MCP endpoint", 403)


class OriginCheck:
    """Streamable HTTP's DNS-rebinding defence: only the site's own origin and `allowedOrigins` get through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = header(scope, b"origin")
        if scope["method"] == "OPTIONS":
            await origins.preflight(origin, send)
            return
        if origin is not None and not origins.is_allowed(origin):
            await FOREIGN_ORIGIN.send(send)
            return
        cors = origins.cors_headers(origin)
        await self.app(scope, receive, adding_headers(send, cors) if cors else send)
