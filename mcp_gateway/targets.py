"""Where authenticated /mcp requests go: an ASGI MCP app in this process, or an MCP server elsewhere."""

import asyncio
import weakref
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from infra.asgi import ASGIApp, Message, Receive, Scope, Send


class InProcessApp:
    """Runs an ASGI app's lifespan itself, once per event loop, so it works whatever the server's lifespan setting.

    MCP SDK apps keep their session manager alive in the lifespan; the gateway starts it on first use and
    hands each request the lifespan state, as an ASGI server would.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self._runners: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = await self._started()
        await self.app({**scope, "state": dict(state)}, receive, send)

    async def _started(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if loop not in self._states:
            started: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._states[loop] = started
            runner = loop.create_task(self._lifespan(started))
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        return await asyncio.shield(self._states[loop])

    async def _lifespan(self, started: asyncio.Future[dict[str, Any]]) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        startup_sent = False

        async def receive() -> Message:
            nonlocal startup_sent
            if not startup_sent:
                startup_sent = True
                return {"type": "lifespan.startup"}
            await asyncio.Event().wait()  # lives as long as the event loop; never asks to shut down
            return {"type": "lifespan.shutdown"}

        async def send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set_result(scope["state"])
            elif message["type"] == "lifespan.startup.failed":
                started.set_exception(RuntimeError(message.get("message", "MCP app failed to start")))

        try:
            await self.app(scope, receive, send)
        finally:
            if not started.done():  # an app without lifespan support raises at once: run it without one
                started.set_result({})


@cache
def target() -> ASGIApp:
    """The configured destination, built once per process."""
    mcp = settings.MUSTER_CONFIG.mcp
    if mcp.upstream_url:
        from mcp_gateway.proxy import UpstreamProxy

        return UpstreamProxy(mcp.upstream_url, mcp.upstream_timeout.total_seconds(), mcp.forward_id_token)
    return InProcessApp(import_string(mcp.app.replace(":", ".")))


async def forward(scope: Scope, receive: Receive, send: Send) -> None:
    """The innermost layer of /mcp: the request goes to the configured destination."""
    await target()(scope, receive, send)
