"""OAuth error responses: one JSON shape, {"error", "error_description"}, with the RFC status."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


def oauth_error(
    error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
) -> JsonResponse:
    """An OAuth error as JSON; never carries request input back, so it is safe for any caller."""
    return JsonResponse({"error": error, "error_description": description}, status=status, headers=headers)


def error_page(request: HttpRequest, error: str, description: str, status: int = 400) -> HttpResponse:
    """The same error, as an HTML page for browsers and as JSON for everything else."""
    if "text/html" not in request.headers.get("Accept", ""):
        return oauth_error(error, description, status)
    html = render_to_string("oauth_server/error.html", {"error": error, "description": description}, request)
    return HttpResponse(html, status=status)
