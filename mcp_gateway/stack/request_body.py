"""Reads the whole /mcp request body first, then runs the rest of the stack as work the client can cancel."""

import asyncio

from infra.asgi import ASGIApp, Message, Receive, Scope, Send
from infra.errors import BODY_TOO_LARGE

MAX_BODY_BYTES = 1 << 20
CLEAN_UP_SECONDS = 5.0  # how long an app may go on after its complete answer once the client has gone


class RequestBody:
    """The inner layers see the body as one message, then a disconnect once the client goes away.

    A client that leaves mid-answer cancels the work at once (a stream stops, the upstream call is closed);
    after a complete answer the app may finish its own clean-up, within CLEAN_UP_SECONDS.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await BODY_TOO_LARGE.send(send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        await _Exchange(b"".join(chunks), send).run(self.app, scope, receive)


class _Exchange:
    """One request's work, its body and whether its answer is complete."""

    def __init__(self, body: bytes, send: Send) -> None:
        self.body: bytes | None = body
        self.client_send = send
        self.gone = asyncio.Event()
        self.answered = False

    async def receive(self) -> Message:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.answered = message["type"] == "http.response.body" and not message.get("more_body")
        await self.client_send(message)

    async def run(self, app: ASGIApp, scope: Scope, client_receive: Receive) -> None:
        work = asyncio.create_task(app(scope, self.receive, self.send))
        leaving = asyncio.create_task(_disconnected(client_receive))
        try:
            await asyncio.wait((work, leaving), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                self.gone.set()
                if self.answered:
                    await asyncio.wait((work,), timeout=CLEAN_UP_SECONDS)
                work.cancel()
                await asyncio.wait((work,))
        finally:
            leaving.cancel()
            work.cancel()
        if not work.cancelled():
            work.result()  # an error inside is the outer layers' to report


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
