"""ASGI entry point (uvicorn): Channels sends /mcp to the gateway's ASGI stack and everything else to Django.

Request bodies are capped before Django or the gateway reads them; while an upstream provider's discovery is
pending, every path but /health answers 503.
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "muster_project.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()  # must run before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from mcp_gateway.stack import mcp_endpoint  # noqa: E402
from muster_project.body_limit import BodySizeLimit  # noqa: E402
from muster_project.discovery_gate import DiscoveryGate  # noqa: E402
from oauth_server.startup import log_effective_settings  # noqa: E402
from oauth_server.upstream import discovery  # noqa: E402

if settings.MUSTER_CONFIG_ERROR:
    sys.exit(f"configuration error: {settings.MUSTER_CONFIG_ERROR}")
log_effective_settings()
discovery.start_in_background()  # never blocks start-up; the gate answers 503 until it succeeds

routes = URLRouter([re_path(r"^mcp$", mcp_endpoint()), re_path(r"", django_asgi_app)])
application = ProtocolTypeRouter({"http": DiscoveryGate(BodySizeLimit(routes, settings.MAX_REQUEST_BODY_BYTES))})
