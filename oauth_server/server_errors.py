"""Answers for failures on our side: 503 for a database or Redis outage, 500 for a crash; JSON, or a page for browsers.

Pages are rendered without the request: its session and messages live in the database and Redis that may be down.
"""

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from infra.errors import OAuthError, describe, wants_html
from infra.outages import UNAVAILABLE, is_outage

log = logging.getLogger("muster.outage")
SERVER_ERROR = OAuthError("server_error", describe("server_error"), 500)
# Endpoints whose callers are programs: always JSON, whatever they accept.
API_PATHS = ("/oauth/token", "/oauth/revoke", "/oauth/register", "/.well-known/", "/user-tokens", "/health", "/metrics")


def wants_page(request: HttpRequest) -> bool:
    return wants_html(request) and not request.path.startswith(API_PATHS)


def answer(request: HttpRequest, error: OAuthError, template: str) -> HttpResponse:
    """`error` as JSON, or `template` (with the same status and headers) for a browser."""
    if not wants_page(request):
        return error.django_response()
    page = render_to_string(template, {"server_name": settings.MUSTER_CONFIG.display_name})
    return HttpResponse(page, status=error.status, headers=error.all_headers())


def unavailable(request: HttpRequest) -> HttpResponse:
    return answer(request, UNAVAILABLE, "503.html")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django calls it, inside its handler, for what nothing else caught (a middleware's, say)."""
    if is_outage(sys.exc_info()[1]):
        return unavailable(request)
    return answer(request, SERVER_ERROR, "500.html")


class OutageMiddleware:
    """A view that finds the database or Redis unreachable answers 503 with Retry-After, never a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None
        log.warning("%s %s: storage unavailable: %r", request.method, request.path, exception)
        return unavailable(request)
