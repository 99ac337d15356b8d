"""The rules a setting's value must follow: each returns the (normalised) value or raises ValueError(message)."""

import ipaddress
import re
from datetime import timedelta

from infra.urls import http_url, is_loopback_host, split_url

OFFLINE_ACCESS = "offline_access"  # the scope that asks for refresh tokens: always offered, never configured
_PROVIDERS = ("local", "dex", "google", "oidc")
_AUDIENCE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_MAX_AUDIENCES = 50
_MAX_SERVER_NAME = 80
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_REFUSED_SCHEMES = {"http", "https", "javascript", "data", "file", "vbscript", "about", "ftp", "blob"}
_REFUSED_SCHEMES |= {"ms-appx", "ms-appx-web"}
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_ASGI_APP_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def check_enabled(value: bool) -> bool:
    if not value:
        raise ValueError("this site is the authorization server; it cannot run with OAuth disabled")
    return value


def check_base_url(value: str) -> str:
    parts = http_url(value)
    if "@" in parts.netloc:
        raise ValueError("must not contain userinfo")
    if "?" in value:
        raise ValueError("must not have a query")
    if parts.path not in ("", "/"):
        raise ValueError(f"must not have a path (got {parts.path!r}); it is the issuer origin")
    return value.removesuffix("/")


def check_server_name(value: str) -> str:
    if len(value) > _MAX_SERVER_NAME or not all(char.isprintable() for char in value):
        raise ValueError(f"must be at most {_MAX_SERVER_NAME} printable characters")
    return value.strip()


def check_provider(value: str) -> str:
    if value not in _PROVIDERS:
        raise ValueError(f"must be one of {', '.join(_PROVIDERS)}, got {value!r}")
    return value


def check_issuer_url(value: str) -> str:
    if not value:
        return value
    parts = http_url(value)
    if "@" in parts.netloc or "?" in value:
        raise ValueError("must not contain userinfo or a query")
    return value.removesuffix("/")


def check_audiences(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) > _MAX_AUDIENCES:
        raise ValueError(f"at most {_MAX_AUDIENCES} audiences, got {len(values)}")
    for value in values:
        if not _AUDIENCE.fullmatch(value):
            raise ValueError(f"{value!r} must be 1 to 256 characters of letters, digits, '_' and '-'")
    return tuple(dict.fromkeys(values))


def check_storage_type(value: str) -> str:
    if value not in ("memory", "valkey"):
        raise ValueError(f"must be memory or valkey, got {value!r}")
    return value


def check_valkey_url(value: str) -> str:
    if not value:
        return value
    parts = split_url(value)  # the URL may carry a password: never echo it
    if parts.scheme not in ("redis", "rediss", "valkey", "valkeys") or not parts.hostname:
        raise ValueError("must be a redis://, rediss://, valkey:// or valkeys:// URL with a host")
    return parts.scheme.replace("valkey", "redis") + value[len(parts.scheme) :]


def check_db(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def check_positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be 1 or more, got {value}")
    return value


def check_positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be longer than 0s, got {value}")
    return value


def check_cidrs(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (CIDR such as 10.0.0.0/8 or 2001:db8::/32)") from None
    return values


def check_schemes(values: tuple[str, ...]) -> tuple[str, ...]:
    schemes = tuple(value.lower() for value in values)
    for scheme in schemes:
        if not _SCHEME.fullmatch(scheme):
            raise ValueError(f"{scheme!r} is not a valid URI scheme")
        if scheme in _REFUSED_SCHEMES:
            raise ValueError(f"{scheme!r} cannot be trusted for public registration")
    return schemes


def check_redirect_uris(values: tuple[str, ...]) -> tuple[str, ...]:
    for uri in values:
        parts = split_url(uri)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{uri!r} must be an absolute https URL")
        if "#" in uri or "@" in parts.netloc:
            raise ValueError(f"{uri!r} must not have a fragment or userinfo")
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            ip = None
        internal = ip is not None and (ip.is_private or ip.is_link_local or ip.is_unspecified)
        if internal or is_loopback_host(parts.hostname):
            raise ValueError(f"{uri!r} must not point at a loopback, private or link-local address")
    return values


def check_origins(values: tuple[str, ...]) -> tuple[str, ...]:
    origins = []
    for origin in values:
        if origin == "*":
            raise ValueError("'*' is refused; list each allowed origin")
        parts = split_url(origin)
        extra = parts.path or "@" in parts.netloc or "?" in origin or "#" in origin
        if extra or not parts.hostname or not origin.lower().startswith(f"{parts.scheme}://"):
            raise ValueError(f"{origin!r} must be an origin scheme://host[:port] without a path")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def check_resource(value: str) -> str:
    if value:
        http_url(value)
    return value


def check_database_url(value: str) -> str:
    if value and split_url(value).scheme not in ("postgres", "postgresql", "pgsql", "sqlite"):
        raise ValueError("must be a postgres://, postgresql://, pgsql:// or sqlite:// URL")
    return value


def check_scopes(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("must list at least one scope")
    for scope in values:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a valid scope token")
        if scope == OFFLINE_ACCESS:
            raise ValueError(f"{OFFLINE_ACCESS} is always offered separately; do not list it")
    return tuple(dict.fromkeys(values))


def check_app(value: str) -> str:
    if not _ASGI_APP_PATH.fullmatch(value):
        raise ValueError(f"must name an ASGI app as module:attribute, got {value!r}")
    return value


def check_upstream_url(value: str) -> str:
    if value:
        parts = split_url(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.fragment or parts.username:
            raise ValueError("must not have a fragment or user info")
    return value


def check_required_scopes(values: tuple[str, ...]) -> tuple[str, ...]:
    for scope in values:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a valid scope token")
    return tuple(dict.fromkeys(values))


def check_secret_key(value: str) -> str:
    if value and len(value) < 32:
        raise ValueError("must be at least 32 characters")
    return value
