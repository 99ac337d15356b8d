"""Template context every page shares: the server's name as people see it."""

from django.conf import settings
from django.http import HttpRequest


def server(request: HttpRequest) -> dict[str, str]:
    return {"server_name": settings.MUSTER_CONFIG.display_name}
