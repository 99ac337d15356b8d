"""A /mcp rate limit: one token of a bucket per request, else 429 with Retry-After (per IP, and per user)."""

from collections.abc import Callable

from infra import audit, ratelimit
from infra.asgi import ASGIApp, Receive, Scope, Send
from infra.client_ip import bucket_key
from infra.errors import too_many_requests
from mcp_gateway.identity import identity_of


class RateLimit:
    """Spends a token of `bucket()` under `key(scope)`; an empty bucket is answered here and audited as `name`."""

    def __init__(
        self,
        app: ASGIApp,
        name: str,
        bucket: Callable[[], ratelimit.TokenBucket],
        key: Callable[[Scope], str],
    ) -> None:
        self.app = app
        self.name = name
        self.bucket = bucket
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        decision = await self.bucket().atake(self.key(scope))
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        identity = identity_of(scope)
        audit.record(
            "rate_limit_exceeded",
            "failure",
            limiter=self.name,
            user_id=identity and identity.user_id,
            client_id=identity and identity.client_id,
        )
        await too_many_requests(decision.retry_after).send(send)


def per_ip(app: ASGIApp) -> RateLimit:
    """Before authentication: the caller's address (an IPv6 /64) spends from `rateLimit.ip*`."""
    return RateLimit(app, "ip", ratelimit.per_ip, lambda scope: bucket_key(audit.client_ip.get() or ""))


def per_user(app: ASGIApp) -> RateLimit:
    """After authentication: the signed-in user spends from `rateLimit.user*`, whichever client they use."""
    return RateLimit(app, "user", ratelimit.per_user, _user_key)


def _user_key(scope: Scope) -> str:
    identity = identity_of(scope)
    if identity is None:
        raise LookupError("the per-user limit runs after authentication")
    return f"user:{identity.user_id}"
