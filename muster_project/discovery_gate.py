"""Degraded mode: while OIDC discovery is pending, every path but /health answers 503 (muster's Lazy server)."""

from infra.asgi import ASGIApp, Receive, Scope, Send
from infra.errors import OAuthError
from oauth_server.upstream import discovery

RETRY_AFTER_SECONDS = 30
PENDING = OAuthError(
    "service_unavailable", "OIDC discovery in progress, please retry", 503, retry_after=RETRY_AFTER_SECONDS
)


class DiscoveryGate:
    """Passes everything once the provider is discovered (no restart needed); until then only /health."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.open or scope["type"] != "http" or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        if discovery.ready():
            self.open = True
            return await self.app(scope, receive, send)
        await PENDING.send(send)
