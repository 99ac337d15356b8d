"""Issuer identification (RFC 9207): exactly one `iss` on every authorization response, success or error."""

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import HttpResponse
from oauth2_provider.settings import oauth2_settings


def with_issuer(uri: str, issuer: str) -> str:
    """§2: the redirect URI with `iss` set to `issuer`, any `iss` already there removed."""
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "iss"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("iss", issuer)])))


class IssuerOnRedirects:
    """For DOT's authorization view: every redirect back to the client names this server (DOT's only on success)."""

    def redirect(self, redirect_to: str, application: Any) -> HttpResponse:
        return super().redirect(with_issuer(redirect_to, oauth2_settings.OIDC_ISS_ENDPOINT), application)  # type: ignore[misc]
