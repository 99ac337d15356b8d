"""uvicorn's HTTP/1.1 protocol plus the `server` block's deadlines and connection cap (uvicorn has none)."""

import asyncio
from typing import Any

from django.conf import settings
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: 78\r\n\r\n"
    b'{"error":"temporarily_unavailable","error_description":"too many connections"}'
)


class DeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose request line and headers, or whole request, are late; caps open connections.

    The header deadline runs from connecting (so a silent connection is closed) and from each request's first byte;
    the request deadline from that first byte until the body's last. Idle kept-alive connections close after
    `server.idleTimeout` (uvicorn's own keep-alive timer, given our value). At SIGTERM uvicorn waits up to
    `server.shutdownGrace` (set here, on the config uvicorn reads then) for answers in progress.
    """

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)  # loads the app, so Django's settings are ready
        limits = settings.MUSTER_CONFIG.server
        self.timeout_keep_alive = limits.idle_timeout.total_seconds()
        self.read_header_timeout = limits.read_header_timeout.total_seconds()
        self.read_timeout = limits.read_timeout.total_seconds()
        self.max_connections = limits.max_connections
        config.timeout_graceful_shutdown = limits.shutdown_grace.total_seconds()  # type: ignore[assignment]
        self.request_started = 0.0
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        self._close_at(self.loop.time() + self.read_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.request_started = self.loop.time()
        self._close_at(self.request_started + self.read_header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._close_at(self.request_started + self.read_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_deadline()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()  # the connection is the WebSocket protocol's from here
        super().handle_websocket_upgrade()

    def shutdown(self) -> None:
        """At SIGTERM: uvicorn's (close when idle, else after this answer), and open GET event streams end cleanly."""
        # Imported here: uvicorn workers import this protocol before the app, when Django is not set up yet.
        from mcp_gateway.stack.token_lifetime import end_listening_streams

        super().shutdown()
        end_listening_streams()

    def _close_at(self, when: float) -> None:
        self._cancel_deadline()
        self.deadline = self.loop.call_at(when, self._late)

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _late(self) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            self.transport.close()
