"""Streams authenticated /mcp requests to the MCP server at mcp.upstreamUrl and its answers back, as they come."""

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

import httpx

from mcp_gateway.identity import identity_of
from mcp_gateway.responses import SECURITY_HEADERS

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

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


def _reply(status: int, code: str, description: str) -> tuple[Message, Message]:
    body = json.dumps({"error": code, "error_description": description}).encode()
    headers = [(b"content-type", b"application/json"), *SECURITY_HEADERS]
    return {"type": "http.response.start", "status": status, "headers": headers}, {
        "type": "http.response.body",
        "body": body,
    }


BAD_GATEWAY = _reply(502, "bad_gateway", "The MCP server behind this gateway is unreachable")
GATEWAY_TIMEOUT = _reply(504, "gateway_timeout", "The MCP server behind this gateway did not answer in time")


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

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        body = await _request_body(receive)
        if body is None:  # the client left before it finished asking
            return
        client = self._client()
        request = client.build_request(
            scope["method"], self._url(scope), headers=self._headers(scope), content=body or None
        )
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await client.send(request, stream=True)
        except (httpx.TimeoutException, TimeoutError):
            log.warning("MCP upstream %s did not answer within %ss", self._host, self.timeout_seconds)
            await _send_all(send, GATEWAY_TIMEOUT)
            return
        except httpx.HTTPError as exc:
            log.warning("MCP upstream %s unreachable: %s", self._host, type(exc).__name__)
            await _send_all(send, BAD_GATEWAY)
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

    def _url(self, scope: MutableMapping[str, Any]) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        if not query:
            return self.upstream_url
        return f"{self.upstream_url}{'&' if '?' in self.upstream_url else '?'}{query}"

    def _headers(self, scope: MutableMapping[str, Any]) -> list[tuple[bytes, bytes]]:
        headers = [
            (name.lower(), value)
            for name, value in scope.get("headers", [])
            if name.lower() in _REQUEST_HEADERS or name.lower().startswith(b"mcp-")
        ]
        headers.append((b"accept-encoding", b"identity"))  # bytes pass through as they are; keep SSE uncompressed
        identity = identity_of(scope)
        if self.forward_id_token and identity is not None and identity.id_token:
            headers.append((b"authorization", f"Bearer {identity.id_token}".encode("latin-1")))
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


async def _send_all(send: Send, messages: tuple[Message, ...]) -> None:
    for message in messages:
        await send(dict(message))
