"""A tiny ASGI app for gateway tests: answers with the identity it was given, or streams until cancelled."""

import asyncio
import dataclasses
import json
from typing import Any

from mcp_gateway.identity import identity_of

cancelled_streams: list[str] = []
finished_cleanups: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise ValueError("http only")
    request = await receive()
    if scope["method"] == "GET":
        await stream_until_cancelled(send)
        return
    identity = identity_of(scope)
    body = {
        "identity": {**dataclasses.asdict(identity), "expires": None} if identity else None,
        "method": scope["method"],
        "body": request.get("body", b"").decode(),
        "authorization": dict(scope["headers"]).get(b"authorization", b"").decode(),
    }
    headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"session-from-app")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
    if b"x-test-cleanup" in dict(scope["headers"]):
        await asyncio.sleep(0.05)  # work an app does after answering (the MCP SDK closes its session here)
        finished_cleanups.append(scope["method"])


async def stream_until_cancelled(send: Any) -> None:
    """An SSE stream that never ends by itself; records when the gateway cancels it."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    number = 0
    try:
        while True:
            await send({"type": "http.response.body", "body": f"data: {number}\n\n".encode(), "more_body": True})
            number += 1
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        cancelled_streams.append(f"after {number} events")
        raise
