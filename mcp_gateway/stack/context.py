"""The outermost /mcp layer: audit context (client IP, request id), the request metric, a 503 or 500 for a failure."""

import logging
import time

from infra import audit, metrics
from infra.asgi import ASGIApp, Message, Receive, Scope, Send, header
from infra.client_ip import asgi_client_ip
from infra.errors import OAuthError
from infra.outages import UNAVAILABLE, is_outage
from infra.request_context import new_request_id

log = logging.getLogger("muster.mcp")
FAILED = OAuthError("server_error", "The MCP endpoint failed", 500)


class RequestContext:
    """Everything inside runs with the caller's IP and request id set for the audit log, and is counted once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 0

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        ip_token = audit.client_ip.set(asgi_client_ip(scope))
        request_id_token = audit.request_id.set(new_request_id(header(scope, b"x-request-id")))
        try:
            await self.app(scope, receive, counted)
        except Exception as exc:
            outage = is_outage(exc)
            if outage:  # the database or Redis is down: expected, and said without a traceback
                log.warning("/mcp: storage unavailable: %r", exc)
            else:
                log.exception("/mcp request failed")
            if not status:
                await (UNAVAILABLE if outage else FAILED).send(counted)
        finally:
            audit.client_ip.reset(ip_token)
            audit.request_id.reset(request_id_token)
            metrics.http_request("mcp", status, time.perf_counter() - started)
