"""Per-request context for the audit log: a request id (echoed as X-Request-ID) and the client's IP address."""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from infra import audit
from infra.client_ip import django_client_ip

INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id(incoming: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh one."""
    return incoming if incoming and INCOMING_ID.match(incoming) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Sets the audit context for everything the request does, and returns the id to the caller."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_request_id(request.headers.get("X-Request-ID"))
        id_token = audit.request_id.set(request_id)
        ip_token = audit.client_ip.set(django_client_ip(request))
        try:
            response = self.get_response(request)
        finally:
            audit.request_id.reset(id_token)
            audit.client_ip.reset(ip_token)
        response["X-Request-ID"] = request_id
        return response
