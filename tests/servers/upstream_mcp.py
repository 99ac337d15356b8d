"""A tiny MCP-shaped upstream for the proxy tests: echoes requests, streams SSE, or answers slowly. No auth.

Run it with `uvicorn tests.servers.upstream_mcp:app --port N --lifespan off`. The path picks the behaviour:

- `/sse?events=N&delay=S&tag=T` streams N events `data: {i}` S seconds apart; it appends `T completed` or
  `T client closed` to the file named by the UPSTREAM_EVENTS_LOG environment variable when the stream ends;
- `/slow?seconds=S` waits S seconds, then echoes;
- anything else echoes: JSON with the method, query, headers and body it got, and `mcp-session-id: upstream-session-1`.
"""

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Headers the proxy must not pass back to its client.
ECHO_EXTRA_HEADERS = [
    (b"set-cookie", b"upstream=1"),
    (b"keep-alive", b"timeout=5"),
    (b"proxy-authenticate", b"Basic"),
    (b"x-dropped-by-connection", b"1"),
    (b"connection", b"x-dropped-by-connection"),
]


async def app(scope: Message, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    query = {name: values[-1] for name, values in parse_qs(scope["query_string"].decode()).items()}
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/sse":
        await _sse(receive, send, int(query.get("events", "3")), float(query.get("delay", "0.5")), query.get("tag", ""))
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(float(query.get("seconds", "5")))
    echo = {
        "method": scope["method"],
        "query": scope["query_string"].decode(),
        "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
        "body": body.decode("utf-8", "replace"),
    }
    payload = json.dumps(echo).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"mcp-session-id", b"upstream-session-1"),
        *ECHO_EXTRA_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _sse(receive: Receive, send: Send, events: int, delay: float, tag: str) -> None:
    async def stream() -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(events):
            if i:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    streaming, watching = asyncio.create_task(stream()), asyncio.create_task(client_gone())
    done, pending = await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    _record(f"{tag} {'completed' if streaming in done else 'client closed'}")


def _record(line: str) -> None:
    path = os.environ.get("UPSTREAM_EVENTS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
