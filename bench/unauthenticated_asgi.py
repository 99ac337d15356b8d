"""Bench only: the site's ASGI application with /mcp authentication switched off; never serve it in production."""

# `uvicorn bench.unauthenticated_asgi:application` builds the same router as muster_project/asgi.py, but its /mcp
# stack has, in place of bearer authentication, a layer that takes every request as one fixed identity without
# looking at any token. Every other layer (Origin check, rate limits, scope check, session binding, the signal, the
# app) runs as usual, so comparing it with the real entry point isolates the cost of bearer-token validation.
# Nothing in the site imports this module.

from muster_project.asgi import django_asgi_app  # first: sets Django up and exits on a configuration error

# isort: split

from datetime import UTC, datetime, timedelta

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.urls import re_path

from infra.asgi import ASGIApp, Receive, Scope, Send
from mcp_gateway.identity import SCOPE_KEY, Identity
from mcp_gateway.stack import mcp_endpoint
from muster_project.body_limit import BodySizeLimit

BENCH_IDENTITY = Identity(
    subject="bench",
    user_id=1,
    client_id="bench",
    scopes=("mcp",),
    session_id="bench",
    expires=datetime.now(UTC) + timedelta(days=1),
)


class FixedIdentity:
    """The authentication layer minus token validation: every request is BENCH_IDENTITY."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, SCOPE_KEY: BENCH_IDENTITY}, receive, send)


routes = URLRouter([re_path(r"^mcp$", mcp_endpoint(authentication=FixedIdentity)), re_path(r"", django_asgi_app)])
application = ProtocolTypeRouter({"http": BodySizeLimit(routes, settings.MAX_REQUEST_BODY_BYTES)})
