"""GET /favicon.ico: the site's icon where browsers look for it (the admin's pages name none)."""

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

ICON = (Path(__file__).resolve().parents[1] / "static" / "oauth_server" / "favicon.ico").read_bytes()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(ICON, content_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
