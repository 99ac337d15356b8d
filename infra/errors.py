"""OAuth error responses: one JSON shape, {"error", "error_description"}, with the RFC status."""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

GRANT_FAILED = "The authorization code or refresh token is invalid, expired or revoked."
DESCRIPTIONS = {
    "invalid_request": "The request is missing a required parameter or is malformed.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": GRANT_FAILED,
    "unauthorized_client": "This client may not use this grant or response type.",
    "unsupported_grant_type": "Only the authorization_code and refresh_token grants are supported.",
    "unsupported_response_type": "Only the code response type is supported.",
    "unsupported_token_type": "Only access and refresh tokens can be revoked.",
    "invalid_scope": "The requested scope is invalid.",
    "access_denied": "The user denied the request.",
    "server_error": "The server could not complete the request.",
    "temporarily_unavailable": "The server is temporarily unavailable; retry later.",
}


def describe(error: str) -> str:
    """A plain description for an OAuth error code that came without one."""
    return DESCRIPTIONS.get(error, "The request was refused.")


def oauth_error(error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> JsonResponse:
    """An OAuth error as JSON; never carries request input back, so it is safe for any caller."""
    return JsonResponse({"error": error, "error_description": description}, status=status, headers=headers)


def error_page(
    request: HttpRequest, error: str, description: str, status: int = 400, *, back: str = ""
) -> HttpResponse:
    """The same error, as an HTML page for browsers and as JSON for everything else.

    Without `back` the page speaks of a sign-in request (the authorization flow); with it, of a form on this
    site that changed nothing, with a link back to `back`.
    """
    if "text/html" not in request.headers.get("Accept", ""):
        return oauth_error(error, description, status)
    context = {"error": error, "description": description, "back": back}
    return HttpResponse(render_to_string("oauth_server/error.html", context, request), status=status)


def completed_error(response: HttpResponse) -> HttpResponse:
    """An oauthlib error body made complete: JSON content type, a description, none at all for grant failures.

    `invalid_grant` always carries the same description, so callers cannot probe why a grant failed.
    """
    if response.status_code < 400:
        return response
    try:
        body = json.loads(response.content)
    except ValueError:
        return response
    if not isinstance(body, dict) or "error" not in body:
        return response
    error = body["error"]
    description = GRANT_FAILED if error == "invalid_grant" else body.get("error_description") or describe(error)
    response.content = json.dumps({"error": error, "error_description": description})
    response["Content-Type"] = "application/json"
    return response
