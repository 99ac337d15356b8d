"""The /mcp endpoint: a Channels consumer that validates the bearer token and hands the request to the MCP target.

No Django middleware runs here, so this consumer does its own Origin check, CORS, body limit, challenges and
error bodies. The target runs as a task, so a client that disconnects mid-stream cancels the work at once.
"""

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from django.conf import settings

from infra import audit, metrics, ratelimit
from infra.client_ip import asgi_client_ip, bucket_key
from infra.request_context import new_request_id
from mcp_gateway import bearer, origins, sessions
from mcp_gateway.challenges import insufficient_scope, unauthorized
from mcp_gateway.identity import SCOPE_KEY, Identity
from mcp_gateway.responses import Reply, error
from mcp_gateway.signals import authenticated
from mcp_gateway.targets import target

log = logging.getLogger("muster.mcp")
MAX_BODY_BYTES = 1 << 20


class McpConsumer(AsyncConsumer):
    """One HTTP request to /mcp (POST, GET, DELETE or an OPTIONS preflight)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body: bytes | None = b""
        self.started = False
        self.status = 0
        self.answered = False
        self.task: asyncio.Task[None] | None = None
        self.disconnected = asyncio.Event()

    async def http_request(self, message: dict[str, Any]) -> None:
        self.body = (self.body or b"") + message.get("body", b"")
        if len(self.body) > MAX_BODY_BYTES:
            await error(413, "invalid_request", "Request body too large (limit 1 MiB)").send(self, [])
            raise StopConsumer()
        if not message.get("more_body"):
            self.task = asyncio.create_task(self.serve())

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        """A client gone mid-answer cancels the work; after a complete answer the app may finish its clean-up."""
        self.disconnected.set()
        if self.task is not None and not self.task.done() and not self.answered:
            self.task.cancel()
        raise StopConsumer()

    async def serve(self) -> None:
        started = time.perf_counter()
        ip_token = audit.client_ip.set(asgi_client_ip(self.scope))
        id_token = audit.request_id.set(new_request_id(self._header(b"x-request-id")))
        try:
            await self._serve()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("/mcp request failed")
            if not self.started:
                await error(500, "server_error", "The MCP endpoint failed").send(self, [])
        finally:
            audit.client_ip.reset(ip_token)
            audit.request_id.reset(id_token)
            metrics.http_request("mcp", self.status, time.perf_counter() - started)

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started, self.status = True, message["status"]
        self.answered = message["type"] == "http.response.body" and not message.get("more_body")
        await super().send(message)

    def _header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    async def _serve(self) -> None:
        origin = self._header(b"origin")
        if self.scope["method"] == "OPTIONS":
            await origins.preflight(origin).send(self, origins.cors_headers(origin))
            return
        cors = origins.cors_headers(origin)
        if origin is not None and not origins.is_allowed(origin):
            await error(403, "forbidden", "This Origin may not use the MCP endpoint").send(self, [])
            return
        if limited := await self._limited("ip", ratelimit.per_ip(), bucket_key(audit.client_ip.get() or "")):
            await limited.send(self, cors)
            return
        outcome = await self._authenticate()
        if isinstance(outcome, Reply):
            await outcome.send(self, cors)
            return
        session_id = self._header(b"mcp-session-id")
        if limited := await self._limited("user", ratelimit.per_user(), f"user:{outcome.user_id}", outcome):
            await limited.send(self, cors)
            return
        if session_id and not await sessions.may_use(session_id, outcome.user_id):
            await error(404, "session_not_found", "No such MCP session for this user").send(self, cors)
            return
        await authenticated.asend(sender=McpConsumer, identity=outcome)
        # The app gets the identity, never our bearer token (it must not log it or pass it on).
        headers = [(name, value) for name, value in self.scope["headers"] if name.lower() != b"authorization"]
        scope = {**self.scope, "headers": headers, SCOPE_KEY: outcome}
        await target()(scope, self._receive, self._relay(outcome, cors, session_id))

    async def _authenticate(self) -> Identity | Reply:
        """The caller's identity, or the answer that refuses them."""
        if "access_token" in parse_qs(self.scope.get("query_string", b"").decode("latin-1")) or (
            b"access_token=" in self.body and "form" in (self._header(b"content-type") or "")
        ):
            return unauthorized("invalid_request", "Send the access token in the Authorization header only", 400)
        scheme, _, token = (self._header(b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return unauthorized(error=None)
        token = token.strip()
        identity = await bearer.validate(token) if token and " " not in token else None
        if identity is None:
            audit.record("token_validation_failed", "failure", token=bearer.checksum(token)[:12] if token else None)
            return unauthorized()
        if not set(settings.MUSTER_CONFIG.mcp.required_scopes) <= set(identity.scopes):
            return insufficient_scope()
        return identity

    async def _limited(
        self, name: str, limiter: ratelimit.TokenBucket, key: str, identity: Identity | None = None
    ) -> Reply | None:
        """429 with Retry-After when the bucket is empty."""
        decision = await limiter.atake(key)
        if decision.allowed:
            return None
        audit.record(
            "rate_limit_exceeded",
            "failure",
            limiter=name,
            user_id=identity and identity.user_id,
            client_id=identity and identity.client_id,
        )
        reply = error(429, "rate_limit_exceeded", "Rate limit exceeded. Please try again later.")
        reply.headers.append((b"retry-after", str(decision.retry_after).encode()))
        return reply

    async def _receive(self) -> dict[str, Any]:
        """The target reads the buffered body once, then waits for the client to go away."""
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    def _relay(self, identity: Identity, cors: list[tuple[bytes, bytes]], known_session: str | None) -> Any:
        """The target's answer goes to the client as it is produced; a new session is bound to this user."""

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                session_id = next((v.decode("latin-1") for k, v in headers if k.lower() == b"mcp-session-id"), None)
                if session_id and session_id != known_session:
                    await sessions.bind(session_id, identity.user_id)
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers + cors}
            await self.send(message)

        return send
