"""Response headers every answer carries, and the clean 413 for oversized bodies that reach Django."""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from infra.errors import BODY_TOO_LARGE

PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
)
ADMIN_CSP = "frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"


class ResponseHeadersMiddleware:
    """`no-store` unless a view chose otherwise, a CSP that forbids framing, HSTS when the base URL is https."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Cache-Control", "no-store")
        admin = request.path.startswith(("/admin/", settings.STATIC_URL))
        response.headers.setdefault("Content-Security-Policy", ADMIN_CSP if admin else PAGE_CSP)
        if settings.MUSTER_CONFIG.base_url.startswith("https://"):
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return BODY_TOO_LARGE.django_response()
        return None
