"""Streams authenticated /mcp requests to the MCP server at mcp.upstreamUrl and its answers back, as they come."""

import asyncio
import logging
import weakref
from contextlib import aclosing
from urllib.parse import urlsplit

import httpx

from infra.asgi import Receive, Scope, Send
from infra.errors import OAuthError
from mcp_gateway.identity import identity_of

log = logging.getLogger("muster.mcp.proxy")

# What the MCP server may hear from the client; never its Authorization (no token passthrough) or cookies.
_REQUEST_HEADERS = frozenset(
    {b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version", b"last-event-id", b"user-agent"}
)
# What the client never hears from the MCP server: hop-by-hop headers, a length we no longer keep, cookies for our
# origin, and the date/server headers our own ASGI server adds.
_DROPPED_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"trailers",
        b"upgrade",
        b"content-length",
        b"set-cookie",
        b"date",
        b"server",
    }
)


BAD_GATEWAY = OAuthError("bad_gateway", "The MCP server behind this gateway is unreachable", 502)
GATEWAY_TIMEOUT = OAuthError("gateway_timeout", "The MCP server behind this gateway did not answer in time", 504)


class UpstreamProxy:
    """An ASGI app that forwards each request to one upstream MCP URL and streams the answer back.

    The caller (the /mcp gateway) has authenticated the request and put its Identity in the scope; `receive`
    yields the whole body first. Cancelling the task running a call closes the upstream stream at once.
    """

    def __init__(self, upstream_url: str, timeout_seconds: float, forward_id_token: bool) -> None:
        self.upstream_url = upstream_url
        self.timeout_seconds = timeout_seconds
        self.forward_id_token = forward_id_token
        parts = urlsplit(upstream_url)
        self._host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _request_body(receive)
        if body is None:  # the client left before it finished asking
            return
        client = self._client()
        request = client.build_request(
            scope["method"], self._url(scope), headers=await self._headers(scope), content=body or None
        )
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await client.send(request, stream=True)
        except (httpx.TimeoutException, TimeoutError):
            log.warning("MCP upstream %s did not answer within %ss", self._host, self.timeout_seconds)
            await GATEWAY_TIMEOUT.send(send)
            return
        except httpx.HTTPError as exc:
            log.warning("MCP upstream %s unreachable: %s", self._host, type(exc).__name__)
            await BAD_GATEWAY.send(send)
            return
        async with aclosing(response):  # also on cancellation: the gateway cancels us when the client leaves
            log.debug("MCP upstream %s answered %s", self._host, response.status_code)
            headers = _response_headers(response.headers.raw)
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:  # too late to change the status: end the body where it stopped
                log.warning("MCP upstream %s stream ended early: %s", self._host, type(exc).__name__)
            await send({"type": "http.response.body", "body": b""})

    async def aclose(self) -> None:
        """Close the connections of the running event loop's client (for shutdown and tests)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_seconds),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
                follow_redirects=False,
                http1=True,
                http2=False,
            )
        return client

    def _url(self, scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        if not query:
            return self.upstream_url
        return f"{self.upstream_url}{'&' if '?' in self.upstream_url else '?'}{query}"

    async def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers = [
            (name.lower(), value)
            for name, value in scope.get("headers", [])
            if name.lower() in _REQUEST_HEADERS or name.lower().startswith(b"mcp-")
        ]
        headers.append((b"accept-encoding", b"identity"))  # bytes pass through as they are; keep SSE uncompressed
        identity = identity_of(scope)
        if self.forward_id_token and identity is not None and (id_token := await identity.id_token()):
            headers.append((b"authorization", f"Bearer {id_token}".encode("latin-1")))
        return headers


async def _request_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named_by_connection = {
        token.strip().lower() for name, value in raw if name.lower() == b"connection" for token in value.split(b",")
    }
    return [
        (name.lower(), value)
        for name, value in raw
        if name.lower() not in _DROPPED_RESPONSE_HEADERS
        and name.lower() not in named_by_connection
        and not name.lower().startswith(b"proxy-")
    ]
