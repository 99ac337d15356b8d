"""The MCP app's answers get `X-Content-Type-Options: nosniff` unless they set it themselves."""

from infra.asgi import ASGIApp, Message, Receive, Scope, Send


class Nosniff:
    """Our own error answers carry it already; this covers what the app (or the upstream server) writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, hardened)
