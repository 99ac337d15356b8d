"""Bearer authentication for /mcp: the caller's Identity into the scope, our token out of it, or a 400/401."""

from urllib.parse import parse_qs

from infra import audit
from infra.asgi import ASGIApp, Message, Receive, Scope, Send, header
from mcp_gateway.bearer import access_tokens, checksum
from mcp_gateway.bearer_header import credentials
from mcp_gateway.challenges import unauthorized
from mcp_gateway.identity import SCOPE_KEY
from mcp_gateway.stack.token_lifetime import until_the_token_ends
from mcp_gateway.verifier import TokenVerifier

TOKEN_OUTSIDE_HEADER = "Send the access token in the Authorization header only"


class BearerAuthentication:
    """Only an `Authorization: Bearer` token that `verifier` accepts gets through (never one in the URL or form).

    The inner layers and the app get the identity (`identity_of(scope)`), never the bearer token: the
    Authorization header is dropped, so an app cannot log it or pass it on. An event stream the app answers
    with ends when the token is revoked or expires (`token_lifetime`).
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier = access_tokens) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        in_form = False
        if "form" in (header(scope, b"content-type") or ""):
            first = await receive()  # the whole body: the request-body layer gives it as one message
            in_form = b"access_token=" in first.get("body", b"")
            receive = _replaying(first, receive)
        if in_form or "access_token" in parse_qs(scope.get("query_string", b"").decode("latin-1")):
            await unauthorized("invalid_request", TOKEN_OUTSIDE_HEADER, 400).send(send)
            return
        presented = credentials(header(scope, b"authorization"))
        if not presented.bearer:
            await unauthorized(error=None).send(send)
            return
        identity = await self.verifier.verify(presented.token) if presented.token else None
        if identity is None:
            audit.record(
                "token_validation_failed", "failure", token=checksum(presented.token)[:12] if presented.token else None
            )
            await unauthorized().send(send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"authorization"]
        token = presented.token

        async def still_valid() -> bool:
            return await self.verifier.verify(token) is not None

        inner = {**scope, "headers": headers, SCOPE_KEY: identity}
        await until_the_token_ends(self.app, inner, receive, send, still_valid, identity.expires)


def _replaying(first: Message, receive: Receive) -> Receive:
    """`receive` that gives `first` again before anything else."""
    pending: list[Message] = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
