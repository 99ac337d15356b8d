"""Ends a streaming answer cleanly (an end of body) once its token is revoked or expires, or the server stops."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from django.db import DatabaseError

from infra.asgi import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("muster.mcp")
CHECK_SECONDS = 1.0  # how often an open stream's token is checked again
_LISTENING: set["_Stream"] = set()  # GET event streams open in this process: they never end by themselves


class _Stream:
    """One answer as it goes out; for an event stream, the watch over its token."""

    def __init__(self, send: Send, still_valid: Callable[[], Awaitable[bool]], expires: datetime) -> None:
        self.client_send = send
        self.still_valid = still_valid
        self.expires = expires
        self.deadline: asyncio.Timeout | None = None
        self.watch: asyncio.Task[None] | None = None
        self.complete = False

    def end(self) -> None:
        """Cancel the app's work at once; `until_the_token_ends` then sends the end of body."""
        assert self.deadline is not None
        self.deadline.reschedule(asyncio.get_running_loop().time())

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and _is_event_stream(message):
            self.watch = asyncio.ensure_future(self._until_the_token_ends())
        self.complete = message["type"] == "http.response.body" and not message.get("more_body")
        await self.client_send(message)

    async def _until_the_token_ends(self) -> None:
        while True:
            left = (self.expires - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, min(CHECK_SECONDS, left)))
            if datetime.now(UTC) >= self.expires:
                break
            try:
                if not await self.still_valid():
                    break
            except DatabaseError:
                # Revoking needs the database too: while it is away nothing new can be revoked. Checked again.
                log.warning("could not check an open stream's token; checking again in %s s", CHECK_SECONDS)
        self.end()


def end_listening_streams() -> None:
    """End every open GET event stream of this process cleanly (at shutdown); answers to requests finish."""
    for stream in list(_LISTENING):
        stream.end()


def _is_event_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and b"text/event-stream" in value for name, value in start.get("headers", ())
    )


async def until_the_token_ends(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    still_valid: Callable[[], Awaitable[bool]],
    expires: datetime,
) -> None:
    """Run `app`; an event stream it answers with ends when `still_valid()` (asked every CHECK_SECONDS) says
    no or at `expires`. Other answers are never cut: they end by themselves."""
    stream = _Stream(send, still_valid, expires)
    if scope["method"] == "GET":
        _LISTENING.add(stream)
    try:
        async with asyncio.timeout(None) as stream.deadline:
            await app(scope, receive, stream.send)
    except TimeoutError:
        if not stream.deadline.expired():
            raise  # the app's own
        if not stream.complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        _LISTENING.discard(stream)
        if stream.watch is not None:
            stream.watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream.watch
