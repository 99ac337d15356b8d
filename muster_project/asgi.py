"""ASGI entry point (uvicorn): Channels routes HTTP; bodies are capped before Django or a consumer reads them."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "muster_project.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()  # must run before anything imports models

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from muster_project.body_limit import BodySizeLimit  # noqa: E402

if settings.MUSTER_CONFIG_ERROR:
    sys.exit(f"configuration error: {settings.MUSTER_CONFIG_ERROR}")

application = ProtocolTypeRouter({"http": BodySizeLimit(django_asgi_app, settings.MAX_REQUEST_BODY_BYTES)})
