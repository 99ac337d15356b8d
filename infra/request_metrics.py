"""Counts and times every request Django answers, by URL name and status (the /mcp consumer reports its own)."""

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from infra import metrics


def endpoint_name(request: HttpRequest) -> str:
    """A label of bounded cardinality: the URL name, "admin", "static", or "unmatched"; never the raw path."""
    if request.path.startswith("/admin/"):
        return "admin"
    if request.path.startswith(settings.STATIC_URL):
        return "static"
    match = getattr(request, "resolver_match", None)
    if match is None:  # a 404, or answered by a middleware (a 429, say) before the URL was resolved
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return "unmatched"
    return match.view_name


class RequestMetricsMiddleware:
    """Sits right inside ResponseHeadersMiddleware, so it sees every answer, error pages included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        metrics.http_request(endpoint_name(request), response.status_code, time.perf_counter() - started)
        return response
