"""Which client a token or revocation request claims to be, from HTTP Basic or the form."""

import base64
import binascii
from urllib.parse import unquote_plus

from django.http import HttpRequest


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
