"""Which client a token or revocation request claims to be, from HTTP Basic or the form."""

import base64
import binascii
from collections.abc import Callable
from urllib.parse import unquote_plus

from django.http import HttpRequest
from oauth2_provider.models import Application


def basic_client_id(request: HttpRequest) -> str | None:
    """The client_id in an `Authorization: Basic` header (RFC 6749 §2.3.1 form-encodes it), else None."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, _ = decoded.partition(":")
    return unquote_plus(client_id) if separator else None


def claimed_client_id(request: HttpRequest) -> str | None:
    """The Basic user when present, else the form's client_id."""
    return basic_client_id(request) or request.POST.get("client_id") or None


def conflicting_client_ids(request: HttpRequest) -> bool:
    """A Basic user and a form client_id that name different clients."""
    basic = basic_client_id(request)
    form = request.POST.get("client_id")
    return bool(basic and form and basic != form)


class ClaimedClient:
    """For DOT views: the claimed client's type and authentication, worked out once per request."""

    authenticate_client: Callable[[HttpRequest], bool]

    def claimed_client_type(self, request: HttpRequest) -> str | None:
        if not hasattr(request, "muster_client_type"):
            client = Application.objects.filter(client_id=claimed_client_id(request) or "").only("client_type").first()
            request.muster_client_type = client.client_type if client else None  # type: ignore[attr-defined]
        return request.muster_client_type  # type: ignore[attr-defined]

    def confidential_client_authenticated(self, request: HttpRequest) -> bool:
        """A confidential client that proved its secret (DOT checks it again when it answers)."""
        if not hasattr(request, "muster_client_authenticated"):
            confidential = self.claimed_client_type(request) == Application.CLIENT_CONFIDENTIAL
            request.muster_client_authenticated = confidential and self.authenticate_client(request)  # type: ignore[attr-defined]
        return request.muster_client_authenticated  # type: ignore[attr-defined]
