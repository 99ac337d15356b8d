"""OAuth error responses: one JSON shape, {"error", "error_description"}, with the RFC status."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from infra.asgi import Headers, Send

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


RATE_LIMITED = "Rate limit exceeded. Please try again later."


def asgi_security_headers() -> list[tuple[bytes, bytes]]:
    """What Django's security middleware would add, for answers written where no middleware runs (ASGI)."""
    return [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", settings.SECURE_REFERRER_POLICY.encode()),
    ]


@dataclass(frozen=True)
class OAuthError:
    """One OAuth error answer: the JSON body, its status, its headers (a challenge, say) and Retry-After.

    Rendered for Django views (`django_response`) and for ASGI code that answers before Django (`send`).
    Never carries request input back, so it is safe for any caller.
    """

    code: str
    description: str
    status: int = 400
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: int | None = None

    def body(self) -> bytes:
        return json.dumps({"error": self.code, "error_description": self.description}).encode()

    def all_headers(self) -> dict[str, str]:
        """`headers`, and Retry-After when set."""
        if self.retry_after is None:
            return dict(self.headers)
        return {**self.headers, "Retry-After": str(self.retry_after)}

    def django_response(self) -> JsonResponse:
        return JsonResponse(
            {"error": self.code, "error_description": self.description}, status=self.status, headers=self.all_headers()
        )

    async def send(self, send: Send, extra_headers: Headers = ()) -> None:
        """The whole answer as ASGI messages, with the security headers no middleware adds there."""
        body = self.body()
        own = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.all_headers().items()]
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *asgi_security_headers(),
            *own,
            *extra_headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


BODY_TOO_LARGE = OAuthError("invalid_request", "Request body too large (limit 1 MiB)", 413)


def too_many_requests(retry_after: int) -> OAuthError:
    """429 with the whole seconds until a request would pass."""
    return OAuthError("rate_limit_exceeded", RATE_LIMITED, 429, retry_after=retry_after)


def describe(error: str) -> str:
    """A plain description for an OAuth error code that came without one."""
    return DESCRIPTIONS.get(error, "The request was refused.")


def oauth_error(error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> JsonResponse:
    """An OAuth error as a Django response (see OAuthError)."""
    return OAuthError(error, description, status, headers or {}).django_response()


def wants_html(request: HttpRequest) -> bool:
    """A browser (it accepts HTML) rather than a program."""
    return "text/html" in request.headers.get("Accept", "")


def error_page(
    request: HttpRequest, error: str, description: str, status: int = 400, *, back: str = ""
) -> HttpResponse:
    """The same error, as an HTML page for browsers and as JSON for everything else.

    Without `back` the page speaks of a sign-in request (the authorization flow); with it, of a form on this
    site that changed nothing, with a link back to `back`.
    """
    if not wants_html(request):
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
