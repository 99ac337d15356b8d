"""Degraded mode: while OIDC discovery is pending, every path but /health answers 503 (muster's Lazy server)."""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from oauth_server.upstream import discovery

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

RETRY_AFTER_SECONDS = 30
BODY = json.dumps(
    {"error": "service_unavailable", "error_description": "OIDC discovery in progress, please retry"}
).encode()
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    (b"cache-control", b"no-store"),
]


class DiscoveryGate:
    """Passes everything once the provider is discovered (no restart needed); until then only /health."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open = False

    async def __call__(self, scope: Message, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if self.open or scope["type"] != "http" or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        if discovery.ready():
            self.open = True
            return await self.app(scope, receive, send)
        await send({"type": "http.response.start", "status": 503, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
