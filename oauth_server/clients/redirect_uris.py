"""Which redirect URIs a client may register (by DCR or in a CIMD document): RFC 8252, RFC 9700, muster's list."""

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from infra.urls import is_loopback_host

BLOCKED_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "ftp", "blob", "ms-appx", "ms-appx-web"}
)


class RedirectURIError(ValueError):
    """A redirect URI that must not be registered; the message says why (safe to show the client)."""


def check_redirect_uri(uri: str) -> None:
    """Refuse anything but https, http on loopback, and custom schemes the operator trusts or allows."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        raise RedirectURIError(f"{uri!r} is not a valid URI") from None
    scheme = parts.scheme.lower()
    if not scheme or any(char.isspace() for char in uri):
        raise RedirectURIError(f"{uri!r} is not an absolute URI")
    if "#" in uri:
        raise RedirectURIError(f"{uri!r} must not have a fragment")
    if scheme in BLOCKED_SCHEMES:
        raise RedirectURIError(f"the {scheme} scheme is never allowed")
    if scheme in ("http", "https"):
        _check_web(uri, scheme, parts.hostname or "", bool(parts.username or parts.password))
    elif scheme not in custom_schemes():
        raise RedirectURIError(f"the custom scheme {scheme!r} is not allowed on this server")


def _check_web(uri: str, scheme: str, host: str, has_userinfo: bool) -> None:
    if not host:
        raise RedirectURIError(f"{uri!r} has no host")
    if has_userinfo:
        raise RedirectURIError(f"{uri!r} must not carry user information")
    if is_loopback_host(host):
        if host.lower() == "localhost" and not settings.MUSTER_CONFIG.allow_localhost_redirect_uris:
            raise RedirectURIError("localhost redirect URIs are not allowed on this server; use 127.0.0.1")
        return
    if scheme == "http":
        raise RedirectURIError(f"{uri!r}: http is allowed only on loopback; use https")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    if address.is_private or address.is_link_local or address.is_unspecified or address.is_multicast:
        raise RedirectURIError(f"{uri!r} points at a private or link-local address")


def custom_schemes() -> frozenset[str]:
    """Custom schemes a client may use: trusted for open registration, or merely allowed."""
    config = settings.MUSTER_CONFIG
    return frozenset(config.trusted_public_registration_schemes) | frozenset(config.allowed_redirect_schemes)


def normalised(uri: str) -> str:
    """Lowercase scheme and host, no default port, no trailing slash (path and query keep their case)."""
    parts = urlsplit(uri)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(scheme)
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def all_loopback(uris: Iterable[str]) -> bool:
    """Every URI goes back to this machine (the consent page warns about such clients)."""
    hosts = [urlsplit(uri).hostname or "" for uri in uris]
    return bool(hosts) and all(is_loopback_host(host) for host in hosts)
