"""Bench only: the site's ASGI application with /mcp authentication switched off; never serve it in production."""

# `uvicorn bench.unauthenticated_asgi:application` builds the same router as muster_project/asgi.py, but its /mcp
# consumer takes every request as one fixed identity without looking at any token. Everything else the gateway does
# (Origin check, session binding, the signal, the relay to the MCP app) runs as usual, so comparing it with the real
# entry point isolates the cost of bearer-token validation. Nothing in the site imports this module.

from muster_project.asgi import django_asgi_app  # first: sets Django up and exits on a configuration error

# isort: split

from datetime import UTC, datetime, timedelta

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.urls import re_path

from mcp_gateway.consumer import McpConsumer
from mcp_gateway.identity import Identity
from mcp_gateway.responses import Reply
from muster_project.body_limit import BodySizeLimit

BENCH_IDENTITY = Identity(
    subject="bench",
    user_id=1,
    client_id="bench",
    scopes=("mcp",),
    session_id="bench",
    expires=datetime.now(UTC) + timedelta(days=1),
)


class UnauthenticatedMcpConsumer(McpConsumer):
    """The /mcp consumer minus token validation: every request is BENCH_IDENTITY."""

    async def _authenticate(self) -> Identity | Reply:
        return BENCH_IDENTITY


routes = URLRouter([re_path(r"^mcp$", UnauthenticatedMcpConsumer.as_asgi()), re_path(r"", django_asgi_app)])
application = ProtocolTypeRouter({"http": BodySizeLimit(routes, settings.MAX_REQUEST_BODY_BYTES)})
