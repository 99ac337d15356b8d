"""Mcp-Session-Id binding: a session belongs to the user who opened it; another user's request gets 404."""

from infra.asgi import ASGIApp, Message, Receive, Scope, Send, header
from infra.errors import OAuthError
from mcp_gateway import sessions
from mcp_gateway.identity import identity_of

NOT_FOUND = OAuthError("session_not_found", "No such MCP session for this user", 404)


class SessionBinding:
    """Checks the session the request names, and binds a new one the app opens to the caller."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = identity_of(scope)
        if identity is None:
            raise LookupError("session binding runs after authentication")
        known = header(scope, b"mcp-session-id")
        if known and not await sessions.may_use(known, identity.user_id):
            await NOT_FOUND.send(send)
            return

        async def binding(message: Message) -> None:
            if message["type"] == "http.response.start":
                opened = next(
                    (
                        value.decode("latin-1")
                        for name, value in message.get("headers", ())
                        if name.lower() == b"mcp-session-id"
                    ),
                    None,
                )
                if opened and opened != known:
                    await sessions.bind(opened, identity.user_id)
            await send(message)

        await self.app(scope, receive, binding)
