"""An ASGI wrapper that refuses request bodies over the limit before any application reads them."""

from infra.asgi import ASGIApp, Message, Receive, Scope, Send
from infra.errors import BODY_TOO_LARGE

CLOSE = [(b"connection", b"close")]  # the rest of the body is never read, so the connection cannot be reused


class BodySizeLimit:
    """A declared Content-Length over the limit is refused at once; a chunked body is counted as it arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await BODY_TOO_LARGE.send(send, CLOSE)
                return
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await BODY_TOO_LARGE.send(send, CLOSE)
                return
            buffered.append(message)
            if not message.get("more_body"):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)
