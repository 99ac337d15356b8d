"""The site's one typed configuration: embedded defaults, then the MUSTER_CONFIG YAML, then MUSTER_* env."""

import base64
import binascii
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import yaml


class ConfigError(Exception):
    """A setting is malformed or refused; ``str(err)`` is ``"<key>: <message>"`` on one line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


# --- URL and value helpers (public ones are used by the rest of the site) ---


def is_loopback_host(host: str) -> bool:
    """True for "localhost", any 127.0.0.0/8 address and ::1 (with or without brackets)."""
    host = host.lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def canonical_resource(uri: str) -> str:
    """Lowercase scheme and host, drop a default port, strip one trailing "/"; keep path case and query."""
    parts = urlsplit(uri)
    scheme, host, port = parts.scheme.lower(), (parts.hostname or ""), parts.port
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        netloc += f":{port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path.removesuffix("/"), parts.query, parts.fragment))


def _split(value: str) -> SplitResult:
    """urlsplit that also rejects whitespace and bad ports, so later code can trust the result."""
    if any(char.isspace() for char in value):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    return parts


def _http_url(value: str) -> SplitResult:
    parts = _split(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError("must be https unless its host is loopback")
    if "#" in value:
        raise ValueError("must not have a fragment")
    return parts


_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
_DURATION_UNITS["h"] = 60 * _DURATION_UNITS["m"]
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """A Go time.ParseDuration string ("720h", "1h30m", "1.5h"); days are not a unit, as in Go."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    body, negative = text[len(sign) :], sign == "-"
    total, pos = Decimal(0), 0
    while body != "0" and pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            break
        total += Decimal(match[1]) * _DURATION_UNITS[match[2]]
        pos = match.end()
    if not body or (body != "0" and pos != len(body)):
        raise ValueError(f"must be a Go duration such as 720h or 1h30m (units ns, us, ms, s, m, h), got {text!r}")
    try:
        return timedelta(microseconds=int(-total if negative else total) // 1000)
    except OverflowError:
        raise ValueError(f"is too large, got {text!r}") from None


def format_go_duration(value: timedelta) -> str:
    """The shortest Go-style spelling of a whole-second duration, e.g. 720h or 1h30m."""
    minutes, seconds = divmod(int(value.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"


# --- type coercion: one function per declared type ---

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _kind(value: object) -> str:
    return {"dict": "mapping", "list": "list", "bool": "boolean", "int": "number", "float": "number"}.get(
        type(value).__name__, type(value).__name__
    )


def _to_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got a YAML {_kind(value)} (quote it in YAML)")
    return value


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int) and str(value).strip().lower() in _BOOLS:
        return _BOOLS[str(value).strip().lower()]
    raise ValueError(f"must be a boolean (true/false/1/0/yes/no), got {value!r}")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f"must be an integer, got {value!r}")


def _to_list(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("must be a list of strings or a comma-separated string")
    return tuple(text for item in items if (text := item.strip()))


def _to_duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"must be a Go duration string such as 720h, got a YAML {_kind(value)}")
    duration = parse_go_duration(value.strip())
    if duration <= timedelta(0):
        raise ValueError(f"must be greater than zero, got {value!r}")
    return duration


def _to_key(value: object) -> bytes | None:
    """32 bytes from 64 hex characters or base64 (standard or urlsafe, padded or not); never echoed."""
    text = _to_str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    unpadded = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError("must be 32 bytes encoded as base64 or as 64 hex characters")
    return key


_COERCE: dict[object, Callable[[object], Any]] = {
    str: _to_str,
    bool: _to_bool,
    bool | None: _to_bool,
    int: _to_int,
    tuple[str, ...]: _to_list,
    timedelta: _to_duration,
    bytes | None: _to_key,
}
_TYPE_NAMES: dict[object, str] = {
    str: "string",
    bool: "bool",
    bool | None: "bool",
    int: "int",
    tuple[str, ...]: "list",
    timedelta: "duration",
    bytes | None: "32-byte key",
}


# --- validation: each returns the (normalised) value or raises ValueError(message) ---

_PROVIDERS = ("local", "dex", "google", "oidc")
_AUDIENCE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_MAX_AUDIENCES = 50
_MAX_SERVER_NAME = 80
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_REFUSED_SCHEMES = {"http", "https", "javascript", "data", "file", "vbscript", "about", "ftp", "blob"}
_REFUSED_SCHEMES |= {"ms-appx", "ms-appx-web"}
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_ASGI_APP_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _check_enabled(value: bool) -> bool:
    if not value:
        raise ValueError("this site is the authorization server; it cannot run with OAuth disabled")
    return value


def _check_base_url(value: str) -> str:
    parts = _http_url(value)
    if "@" in parts.netloc:
        raise ValueError("must not contain userinfo")
    if "?" in value:
        raise ValueError("must not have a query")
    if parts.path not in ("", "/"):
        raise ValueError(f"must not have a path (got {parts.path!r}); it is the issuer origin")
    return value.removesuffix("/")


def _check_server_name(value: str) -> str:
    if len(value) > _MAX_SERVER_NAME or not all(char.isprintable() for char in value):
        raise ValueError(f"must be at most {_MAX_SERVER_NAME} printable characters")
    return value.strip()


def _check_provider(value: str) -> str:
    if value not in _PROVIDERS:
        raise ValueError(f"must be one of {', '.join(_PROVIDERS)}, got {value!r}")
    return value


def _check_issuer_url(value: str) -> str:
    if not value:
        return value
    parts = _http_url(value)
    if "@" in parts.netloc or "?" in value:
        raise ValueError("must not contain userinfo or a query")
    return value.removesuffix("/")


def _check_audiences(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) > _MAX_AUDIENCES:
        raise ValueError(f"at most {_MAX_AUDIENCES} audiences, got {len(values)}")
    for value in values:
        if not _AUDIENCE.fullmatch(value):
            raise ValueError(f"{value!r} must be 1 to 256 characters of letters, digits, '_' and '-'")
    return tuple(dict.fromkeys(values))


def _check_storage_type(value: str) -> str:
    if value not in ("memory", "valkey"):
        raise ValueError(f"must be memory or valkey, got {value!r}")
    return value


def _check_valkey_url(value: str) -> str:
    if not value:
        return value
    parts = _split(value)  # the URL may carry a password: never echo it
    if parts.scheme not in ("redis", "rediss", "valkey", "valkeys") or not parts.hostname:
        raise ValueError("must be a redis://, rediss://, valkey:// or valkeys:// URL with a host")
    return parts.scheme.replace("valkey", "redis") + value[len(parts.scheme) :]


def _check_db(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _check_positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be 1 or more, got {value}")
    return value


def _check_cidrs(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (CIDR such as 10.0.0.0/8 or 2001:db8::/32)") from None
    return values


def _check_schemes(values: tuple[str, ...]) -> tuple[str, ...]:
    schemes = tuple(value.lower() for value in values)
    for scheme in schemes:
        if not _SCHEME.fullmatch(scheme):
            raise ValueError(f"{scheme!r} is not a valid URI scheme")
        if scheme in _REFUSED_SCHEMES:
            raise ValueError(f"{scheme!r} cannot be trusted for public registration")
    return schemes


def _check_redirect_uris(values: tuple[str, ...]) -> tuple[str, ...]:
    for uri in values:
        parts = _split(uri)
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


def _check_origins(values: tuple[str, ...]) -> tuple[str, ...]:
    origins = []
    for origin in values:
        if origin == "*":
            raise ValueError("'*' is refused; list each allowed origin")
        parts = _split(origin)
        extra = parts.path or "@" in parts.netloc or "?" in origin or "#" in origin
        if extra or not parts.hostname or not origin.lower().startswith(f"{parts.scheme}://"):
            raise ValueError(f"{origin!r} must be an origin scheme://host[:port] without a path")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _check_resource(value: str) -> str:
    if value:
        _http_url(value)
    return value


def _check_database_url(value: str) -> str:
    if value and _split(value).scheme not in ("postgres", "postgresql", "pgsql", "sqlite"):
        raise ValueError("must be a postgres://, postgresql://, pgsql:// or sqlite:// URL")
    return value


def _check_scopes(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("must list at least one scope")
    for scope in values:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a valid scope token")
        if scope == "offline_access":
            raise ValueError("offline_access is always offered separately; do not list it")
    return tuple(dict.fromkeys(values))


def _check_app(value: str) -> str:
    if not _ASGI_APP_PATH.fullmatch(value):
        raise ValueError(f"must name an ASGI app as module:attribute, got {value!r}")
    return value


def _check_upstream_url(value: str) -> str:
    if value:
        parts = _split(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.fragment or parts.username:
            raise ValueError("must not have a fragment or user info")
    return value


def _check_required_scopes(values: tuple[str, ...]) -> tuple[str, ...]:
    for scope in values:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a valid scope token")
    return tuple(dict.fromkeys(values))


def _check_secret_key(value: str) -> str:
    if value and len(value) < 32:
        raise ValueError("must be at least 32 characters")
    return value


# --- the declaration: every setting exactly once ---


def _meta(
    key: str,
    doc: str,
    *,
    check: Callable[[Any], Any] | None = None,
    secret: bool = False,
    env: str = "",
    aliases: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A setting's YAML key, meaning, validator, secrecy (adds a *File twin), env word and env aliases."""
    return {"key": key, "doc": doc, "check": check, "secret": secret, "env": env, "aliases": aliases}


_UPSTREAM = "Used when provider is"
_REGISTRATION = "Governs dynamic client registration at /oauth/register."


@dataclass(frozen=True)
class DexConfig:
    issuer_url: str = field(
        default="",
        metadata=_meta("issuerUrl", f"Dex issuer URL (discovery). {_UPSTREAM} dex.", check=_check_issuer_url),
    )
    client_id: str = field(default="", metadata=_meta("clientId", f"OAuth client id at Dex. {_UPSTREAM} dex."))
    client_secret: str = field(
        default="",
        metadata=_meta("clientSecret", f"OAuth client secret at Dex. {_UPSTREAM} dex.", secret=True),
    )
    connector_id: str = field(
        default="",
        metadata=_meta("connectorId", f"Dex connector to sign in with (connector_id). {_UPSTREAM} dex."),
    )
    required_audiences: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "requiredAudiences",
            f"Audiences to request as audience:server:client_id:<aud> scopes (at most 50). {_UPSTREAM} dex.",
            check=_check_audiences,
        ),
    )
    allow_private_ip_oidc: bool = field(
        default=False,
        metadata=_meta(
            "allowPrivateIPOIDC",
            f"Allow the issuer on a loopback or private address (logged as a warning). {_UPSTREAM} dex.",
            env="ALLOW_PRIVATE_IP_OIDC",
        ),
    )


@dataclass(frozen=True)
class GoogleConfig:
    client_id: str = field(default="", metadata=_meta("clientId", f"OAuth client id at Google. {_UPSTREAM} google."))
    client_secret: str = field(
        default="",
        metadata=_meta("clientSecret", f"OAuth client secret at Google. {_UPSTREAM} google.", secret=True),
    )


@dataclass(frozen=True)
class OidcConfig:
    issuer_url: str = field(
        default="",
        metadata=_meta("issuerUrl", f"Issuer URL (discovery). {_UPSTREAM} oidc.", check=_check_issuer_url),
    )
    client_id: str = field(default="", metadata=_meta("clientId", f"OAuth client id at the issuer. {_UPSTREAM} oidc."))
    client_secret: str = field(
        default="",
        metadata=_meta("clientSecret", f"OAuth client secret at the issuer. {_UPSTREAM} oidc.", secret=True),
    )
    allow_private_ip_oidc: bool = field(
        default=False,
        metadata=_meta(
            "allowPrivateIPOIDC",
            f"Allow the issuer on a loopback or private address (logged as a warning). {_UPSTREAM} oidc.",
            env="ALLOW_PRIVATE_IP_OIDC",
        ),
    )


@dataclass(frozen=True)
class ValkeyConfig:
    url: str = field(
        default="",
        metadata=_meta(
            "url",
            "redis://, rediss://, valkey:// or valkeys:// URL (valkey schemes are rewritten to redis).",
            check=_check_valkey_url,
            aliases=("REDIS_URL",),
        ),
    )
    password: str = field(default="", metadata=_meta("password", "Valkey password.", secret=True))
    tls_enabled: bool = field(
        default=False, metadata=_meta("tlsEnabled", "Connect with TLS (turns redis:// into rediss://).")
    )
    key_prefix: str = field(
        default="muster:", metadata=_meta("keyPrefix", "Prefix of every key this site writes; may be empty.")
    )
    db: int = field(default=0, metadata=_meta("db", "Valkey database number, 0 or more.", check=_check_db))


@dataclass(frozen=True)
class McpConfig:
    app: str = field(
        default="mcp_gateway.demo:app",
        metadata=_meta("app", "The ASGI MCP app served in-process at /mcp, as module:attribute.", check=_check_app),
    )
    upstream_url: str = field(
        default="",
        metadata=_meta(
            "upstreamUrl",
            "An MCP server elsewhere to stream authenticated /mcp requests to; when set, mcp.app is unused.",
            check=_check_upstream_url,
        ),
    )
    upstream_timeout: timedelta = field(
        default=timedelta(seconds=30),
        metadata=_meta("upstreamTimeout", "How long to wait for the upstream to connect and answer (between events)."),
    )
    forward_id_token: bool = field(
        default=False,
        metadata=_meta("forwardIdToken", "Send the user's upstream id_token as the bearer to mcp.upstreamUrl (SSO)."),
    )
    required_scopes: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "requiredScopes", "Scopes a token must carry to use /mcp (none by default).", check=_check_required_scopes
        ),
    )


@dataclass(frozen=True)
class RateLimitConfig:
    """Token buckets shared by every worker and replica (in Redis/Valkey when configured); muster's values."""

    ip_rate: int = field(
        default=50,
        metadata=_meta(
            "ipRate", "Per client IP, on every OAuth endpoint and /mcp: tokens added per second.", check=_check_positive
        ),
    )
    ip_burst: int = field(
        default=100,
        metadata=_meta(
            "ipBurst",
            "Per client IP, on every OAuth endpoint and /mcp: bucket size (the burst allowed).",
            check=_check_positive,
        ),
    )
    user_rate: int = field(
        default=100,
        metadata=_meta(
            "userRate",
            "Per user on /mcp, per confidential client on token and revoke: tokens added per second.",
            check=_check_positive,
        ),
    )
    user_burst: int = field(
        default=200,
        metadata=_meta(
            "userBurst",
            "Per user on /mcp, per confidential client on token and revoke: bucket size (the burst allowed).",
            check=_check_positive,
        ),
    )
    registrations_per_hour: int = field(
        default=10,
        metadata=_meta("registrationsPerHour", "Client registrations per IP per hour.", check=_check_positive),
    )
    clients_per_ip: int = field(
        default=10, metadata=_meta("clientsPerIP", "Registered clients kept per IP.", check=_check_positive)
    )
    cimd_rate: int = field(
        default=1,
        metadata=_meta("cimdRate", "CIMD document fetches per host: tokens added per second.", check=_check_positive),
    )
    cimd_burst: int = field(
        default=3,
        metadata=_meta(
            "cimdBurst", "CIMD document fetches per host: bucket size (the burst allowed).", check=_check_positive
        ),
    )
    security_log_rate: int = field(
        default=1,
        metadata=_meta(
            "securityLogRate",
            "Security-event log lines per (user, client, event): tokens added per second.",
            check=_check_positive,
        ),
    )
    security_log_burst: int = field(
        default=5,
        metadata=_meta(
            "securityLogBurst",
            "Security-event log lines per (user, client, event): bucket size (the burst allowed).",
            check=_check_positive,
        ),
    )


@dataclass(frozen=True)
class MetricsConfig:
    allowed_cidrs: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "allowedCIDRs",
            "Networks besides loopback that may read /metrics.",
            check=_check_cidrs,
            env="ALLOWED_CIDRS",
        ),
    )


@dataclass(frozen=True)
class StorageConfig:
    type: str = field(
        default="memory",
        metadata=_meta(
            "type",
            "memory or valkey; when no source sets it and storage.valkey.url is set, valkey.",
            check=_check_storage_type,
        ),
    )
    valkey: ValkeyConfig = field(default_factory=ValkeyConfig, metadata={"key": "valkey"})


@dataclass(frozen=True)
class Config:
    enabled: bool = field(
        default=True,
        metadata=_meta("enabled", "Must stay true: this site is the authorization server.", check=_check_enabled),
    )
    base_url: str = field(
        default="http://127.0.0.1:8000",
        metadata=_meta(
            "baseUrl",
            "Public URL of this server and the OAuth issuer; https unless loopback; no path.",
            check=_check_base_url,
        ),
    )
    server_name: str = field(
        default="",
        metadata=_meta(
            "serverName",
            "The name people see on the sign-in, consent and account pages; empty means baseUrl's host.",
            check=_check_server_name,
        ),
    )
    provider: str = field(
        default="local",
        metadata=_meta(
            "provider",
            "Where users sign in: local (Django accounts), dex, google or oidc (any OpenID Connect issuer).",
            check=_check_provider,
        ),
    )
    dex: DexConfig = field(default_factory=DexConfig, metadata={"key": "dex"})
    google: GoogleConfig = field(default_factory=GoogleConfig, metadata={"key": "google"})
    oidc: OidcConfig = field(default_factory=OidcConfig, metadata={"key": "oidc"})
    storage: StorageConfig = field(default_factory=StorageConfig, metadata={"key": "storage"})
    mcp: McpConfig = field(default_factory=McpConfig, metadata={"key": "mcp"})
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig, metadata={"key": "rateLimit"})
    metrics: MetricsConfig = field(default_factory=MetricsConfig, metadata={"key": "metrics"})
    trusted_proxy_cidrs: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "trustedProxyCIDRs",
            "Proxies whose X-Forwarded-For is believed: the client IP is the right-most hop not in these networks.",
            check=_check_cidrs,
            env="TRUSTED_PROXY_CIDRS",
        ),
    )
    registration_token: str = field(
        default="",
        metadata=_meta(
            "registrationToken",
            f"Bearer token that unlocks client registration. {_REGISTRATION}",
            secret=True,
        ),
    )
    allow_public_client_registration: bool | None = field(
        default=None,
        metadata=_meta(
            "allowPublicClientRegistration",
            "Allow registration without the token; unset means on exactly when baseUrl is loopback.",
        ),
    )
    trusted_public_registration_schemes: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "trustedPublicRegistrationSchemes",
            f"Custom redirect URI schemes (e.g. cursor) trusted without the token. {_REGISTRATION}",
            check=_check_schemes,
        ),
    )
    trusted_public_registration_redirect_uris: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "trustedPublicRegistrationRedirectURIs",
            f"Public https redirect URIs trusted without the token. {_REGISTRATION}",
            check=_check_redirect_uris,
        ),
    )
    allowed_redirect_schemes: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "allowedRedirectSchemes",
            "Custom redirect URI schemes clients may register (trusted ones are always allowed).",
            check=_check_schemes,
        ),
    )
    allow_private_ip_client_metadata: bool = field(
        default=False,
        metadata=_meta(
            "allowPrivateIPClientMetadata",
            "Development only: let CIMD fetch loopback and private hosts (logged as a warning).",
            env="ALLOW_PRIVATE_IP_CLIENT_METADATA",
        ),
    )
    extra_ca_file: str = field(
        default="",
        metadata=_meta(
            "extraCAFile",
            "Development only: a PEM bundle also trusted for outbound fetches (logged as a warning).",
            env="EXTRA_CA_FILE",
        ),
    )
    enable_cimd: bool = field(
        default=True,
        metadata=_meta("enableCIMD", "Accept Client ID Metadata Documents (an https URL as client_id)."),
    )
    allow_localhost_redirect_uris: bool = field(
        default=True,
        metadata=_meta("allowLocalhostRedirectURIs", "Allow loopback redirect URIs (any port) for native clients."),
    )
    encryption_key: bytes | None = field(
        default=None,
        metadata=_meta(
            "encryptionKey",
            "AES-256-GCM key (32 bytes, base64 or 64 hex) for upstream tokens at rest; unset: derived from secretKey.",
            secret=True,
        ),
    )
    expose_upstream_id_token: bool = field(
        default=False,
        metadata=_meta("exposeUpstreamIdToken", "Include the upstream provider's id_token in /oauth/token responses."),
    )
    session_duration: timedelta = field(
        default=timedelta(hours=720),
        metadata=_meta("sessionDuration", "How long a sign-in lasts (refresh-token lifetime); Go duration."),
    )
    access_token_lifetime: timedelta = field(
        default=timedelta(minutes=30),
        metadata=_meta("accessTokenLifetime", "How long an access token works; Go duration."),
    )
    refresh_grace_period: timedelta = field(
        default=timedelta(seconds=60),
        metadata=_meta(
            "refreshGracePeriod",
            "How long a rotated refresh token presented again gets the same new pair; Go duration.",
        ),
    )
    allowed_origins: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "allowedOrigins",
            "Browser origins scheme://host[:port] allowed cross-origin ('*' refused). Used by the CORS work.",
            check=_check_origins,
        ),
    )
    resource_identifier: str = field(
        default="",
        metadata=_meta(
            "resourceIdentifier",
            "The MCP resource (token audience); empty means baseUrl + /mcp.",
            check=_check_resource,
        ),
    )
    database_url: str = field(
        default="",
        metadata=_meta(
            "databaseUrl",
            "postgres:// or sqlite:// URL; empty means the SQLite file var/muster.sqlite3.",
            check=_check_database_url,
            aliases=("DATABASE_URL",),
        ),
    )
    secret_key: str = field(
        default="",
        metadata=_meta(
            "secretKey",
            "Django SECRET_KEY, 32 characters or more; empty means generated once and kept under var/.",
            check=_check_secret_key,
            secret=True,
        ),
    )
    scopes: tuple[str, ...] = field(
        default=("mcp",),
        metadata=_meta(
            "scopes", "Scopes offered to clients; offline_access is always offered too.", check=_check_scopes
        ),
    )

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def display_name(self) -> str:
        """`serverName`, else the host (and port) people see in the address bar."""
        return self.server_name or urlsplit(self.base_url).netloc

    @property
    def public_registration_allowed(self) -> bool:
        """`allowPublicClientRegistration`, else true exactly when the base URL is loopback (this machine only)."""
        if self.allow_public_client_registration is not None:
            return self.allow_public_client_registration
        return self.base_url_is_loopback

    @property
    def base_url_is_loopback(self) -> bool:
        """Served to this machine only: clients elsewhere (ChatGPT, claude.ai) cannot reach it."""
        return is_loopback_host(urlsplit(self.base_url).hostname or "")

    @property
    def mcp_resource(self) -> str:
        if self.resource_identifier:
            return canonical_resource(self.resource_identifier)
        return self.base_url + "/mcp"


# --- loading ---


@dataclass(frozen=True)
class _Leaf:
    key: str  # YAML key path under the block, e.g. "storage.valkey.keyPrefix"
    env: str
    type: Any
    default: Any
    meta: Mapping[str, Any]

    @property
    def file_key(self) -> str:
        return self.key + "File" if self.meta["secret"] else ""


def _env_word(key: str) -> str:
    """camelCase to UPPER_SNAKE, acronyms (and a plural "s") kept whole: redirectURIs -> REDIRECT_URIS."""
    return "_".join(re.findall(r"[A-Z]+s?(?![a-z])|[A-Z]?[a-z0-9]+", key)).upper()


def _leaves(cls: type, prefix: str = "", env: str = "MUSTER_") -> Iterator[_Leaf]:
    for f in fields(cls):
        key = prefix + f.metadata["key"]
        word = f.metadata.get("env") or _env_word(f.metadata["key"])
        if is_dataclass(f.type):
            yield from _leaves(f.type, key + ".", f"{env}{word}_")  # type: ignore[arg-type]
        else:
            yield _Leaf(key, env + word, f.type, f.default, f.metadata)


_LEAVES = tuple(_leaves(Config))
_KEYS = {leaf.key for leaf in _LEAVES} | {leaf.file_key for leaf in _LEAVES if leaf.file_key}
_SECTIONS = {key.rsplit(".", n)[0] for key in _KEYS for n in range(1, key.count(".") + 1)}
_BLOCKS = ("aggregator.oauthServer", "aggregator.oauth.server")
_PROVIDER_REQUIRES = {
    "dex": ("issuerUrl", "clientId", "clientSecret"),
    "oidc": ("issuerUrl", "clientId", "clientSecret"),
    "google": ("clientId", "clientSecret"),
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(key: str, value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ${VAR} in a YAML string (or list of strings) from the environment."""
    if isinstance(value, list):
        return [_expand(key, item, environ) for item in value]
    if not isinstance(value, str):
        return value
    for name in _VAR.findall(value):
        if name not in environ:
            raise ConfigError(key, f"environment variable {name} is not set (referenced as ${{{name}}})")
    return _VAR.sub(lambda match: environ[match[1]], value)


def _flatten(block: Mapping[Any, Any], prefix: str, environ: Mapping[str, str], out: dict[str, Any]) -> None:
    for name, value in block.items():
        key = f"{prefix}{name}"
        if key in _SECTIONS:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(key, f"must be a mapping, got a YAML {_kind(value)}")
            _flatten(value or {}, key + ".", environ, out)
        elif key in _KEYS:
            if value is not None:  # a bare "key:" leaves the setting unset
                out[key] = _expand(key, value, environ)
        else:
            close = difflib.get_close_matches(key, sorted(_KEYS | _SECTIONS), n=1)
            raise ConfigError(key, "unknown key" + (f"; did you mean {close[0]}?" if close else ""))


def _read_yaml(path: str, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("MUSTER_CONFIG", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("MUSTER_CONFIG", f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError("MUSTER_CONFIG", f"{path} must hold a YAML mapping")
    found: list[tuple[str, Any]] = []
    for block in _BLOCKS:
        node: Any = document
        for part in block.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append((block, node))
    if len(found) > 1:
        raise ConfigError(_BLOCKS[1], f"both {_BLOCKS[0]} and {_BLOCKS[1]} are present; keep one")
    out: dict[str, Any] = {}
    for block, node in found:
        if not isinstance(node, dict):
            raise ConfigError(block, f"must be a mapping, got a YAML {_kind(node)}")
        _flatten(node, "", environ, out)
    return out


def _build(cls: type, prefix: str, values: Mapping[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        key = prefix + f.metadata["key"]
        kwargs[f.name] = _build(f.type, key + ".", values) if key in _SECTIONS else values[key]  # type: ignore[arg-type]
    return cls(**kwargs)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the YAML file named by MUSTER_CONFIG, then MUSTER_*/alias env; raises ConfigError."""
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}  # key -> (value, where it came from)
    if path := environ.get("MUSTER_CONFIG", ""):
        raw.update((key, (value, path)) for key, value in _read_yaml(path, environ).items())
    for leaf in _LEAVES:
        twin = [(leaf.file_key, leaf.env + "_FILE")] if leaf.file_key else []
        for key, name in [
            *((leaf.key, alias) for alias in leaf.meta["aliases"]),
            (leaf.key, leaf.env),
            *twin,
        ]:
            if name in environ:
                raw[key] = (environ[name], name)

    values: dict[str, Any] = {}
    for leaf in _LEAVES:
        value, origin = raw.get(leaf.key, (leaf.default, ""))
        if leaf.file_key and raw.get(leaf.file_key, ("", ""))[0]:
            file_path, where = raw[leaf.file_key]
            if not isinstance(file_path, str):
                raise ConfigError(leaf.file_key, f"must be a file path string, got a YAML {_kind(file_path)}")
            try:
                value, origin = Path(file_path).read_text(encoding="utf-8").rstrip(), file_path
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise ConfigError(leaf.file_key, f"cannot read {file_path} (from {where}): {reason}") from None
        try:
            if origin:
                value = _COERCE[leaf.type](value)
            values[leaf.key] = leaf.meta["check"](value) if leaf.meta["check"] else value
        except ValueError as exc:
            raise ConfigError(leaf.key, f"{exc} (from {origin})" if origin else str(exc)) from None

    if "storage.type" not in raw and values["storage.valkey.url"]:
        values["storage.type"] = "valkey"
    if values["storage.type"] == "valkey" and not values["storage.valkey.url"]:
        raise ConfigError("storage.valkey.url", "is required when storage.type is valkey")
    provider = values["provider"]
    for name in _PROVIDER_REQUIRES.get(provider, ()):
        if not values[f"{provider}.{name}"]:
            raise ConfigError(f"{provider}.{name}", f"is required when provider is {provider}")
    return _build(Config, "", values)


def _shown(default: object) -> str:
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, timedelta):
        return f"`{format_go_duration(default)}`"
    if isinstance(default, tuple):
        default = ",".join(default)
    return f"`{default}`" if default != "" else "(empty)"


def reference_table() -> str:
    """The Markdown table of every setting, as docs/configuration.md shows it."""
    rows = [
        "| YAML key | Environment variable | Type | Default | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for leaf in _LEAVES:
        key, env = f"`{leaf.key}`", f"`{leaf.env}`"
        if leaf.file_key:
            key, env = f"{key}, `{leaf.file_key}`", f"{env}, `{leaf.env}_FILE`"
        env += "".join(f", `{alias}`" for alias in leaf.meta["aliases"])
        rows.append(f"| {key} | {env} | {_TYPE_NAMES[leaf.type]} | {_shown(leaf.default)} | {leaf.meta['doc']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(reference_table(), end="")
