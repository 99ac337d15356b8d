"""The declaration: every setting exactly once, with its YAML key, type, default, meaning, rule and env name."""

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from infra.config.validators import (
    check_app,
    check_audiences,
    check_base_url,
    check_cidrs,
    check_database_url,
    check_db,
    check_enabled,
    check_issuer_url,
    check_origins,
    check_positive,
    check_positive_duration,
    check_provider,
    check_redirect_uris,
    check_required_scopes,
    check_resource,
    check_schemes,
    check_scopes,
    check_secret_key,
    check_server_name,
    check_storage_type,
    check_upstream_url,
    check_valkey_url,
)
from infra.urls import canonical_resource, is_loopback_host


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
        metadata=_meta("issuerUrl", f"Dex issuer URL (discovery). {_UPSTREAM} dex.", check=check_issuer_url),
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
            check=check_audiences,
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
        metadata=_meta("issuerUrl", f"Issuer URL (discovery). {_UPSTREAM} oidc.", check=check_issuer_url),
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
            check=check_valkey_url,
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
    db: int = field(default=0, metadata=_meta("db", "Valkey database number, 0 or more.", check=check_db))


@dataclass(frozen=True)
class McpConfig:
    app: str = field(
        default="mcp_gateway.demo:app",
        metadata=_meta("app", "The ASGI MCP app served in-process at /mcp, as module:attribute.", check=check_app),
    )
    upstream_url: str = field(
        default="",
        metadata=_meta(
            "upstreamUrl",
            "An MCP server elsewhere to stream authenticated /mcp requests to; when set, mcp.app is unused.",
            check=check_upstream_url,
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
            "requiredScopes", "Scopes a token must carry to use /mcp (none by default).", check=check_required_scopes
        ),
    )


@dataclass(frozen=True)
class RateLimitConfig:
    """Token buckets shared by every worker and replica (in Redis/Valkey when configured); muster's values."""

    ip_rate: int = field(
        default=50,
        metadata=_meta(
            "ipRate", "Per client IP, on every OAuth endpoint and /mcp: tokens added per second.", check=check_positive
        ),
    )
    ip_burst: int = field(
        default=100,
        metadata=_meta(
            "ipBurst",
            "Per client IP, on every OAuth endpoint and /mcp: bucket size (the burst allowed).",
            check=check_positive,
        ),
    )
    user_rate: int = field(
        default=100,
        metadata=_meta(
            "userRate",
            "Per user on /mcp, per confidential client on token and revoke: tokens added per second.",
            check=check_positive,
        ),
    )
    user_burst: int = field(
        default=200,
        metadata=_meta(
            "userBurst",
            "Per user on /mcp, per confidential client on token and revoke: bucket size (the burst allowed).",
            check=check_positive,
        ),
    )
    registrations_per_hour: int = field(
        default=10,
        metadata=_meta("registrationsPerHour", "Client registrations per IP per hour.", check=check_positive),
    )
    clients_per_ip: int = field(
        default=10, metadata=_meta("clientsPerIP", "Registered clients kept per IP.", check=check_positive)
    )
    cimd_rate: int = field(
        default=1,
        metadata=_meta("cimdRate", "CIMD document fetches per host: tokens added per second.", check=check_positive),
    )
    cimd_burst: int = field(
        default=3,
        metadata=_meta(
            "cimdBurst", "CIMD document fetches per host: bucket size (the burst allowed).", check=check_positive
        ),
    )
    security_log_rate: int = field(
        default=1,
        metadata=_meta(
            "securityLogRate",
            "Security-event log lines per (user, client, event): tokens added per second.",
            check=check_positive,
        ),
    )
    security_log_burst: int = field(
        default=5,
        metadata=_meta(
            "securityLogBurst",
            "Security-event log lines per (user, client, event): bucket size (the burst allowed).",
            check=check_positive,
        ),
    )


@dataclass(frozen=True)
class ServerConfig:
    read_header_timeout: timedelta = field(
        default=timedelta(seconds=10),
        metadata=_meta(
            "readHeaderTimeout",
            "How long a request's line and headers may take from its first byte (or from connecting); then closed.",
            check=check_positive_duration,
        ),
    )
    read_timeout: timedelta = field(
        default=timedelta(seconds=60),
        metadata=_meta(
            "readTimeout",
            "How long a whole request, body included, may take to arrive from its first byte; then closed.",
            check=check_positive_duration,
        ),
    )
    idle_timeout: timedelta = field(
        default=timedelta(seconds=120),
        metadata=_meta(
            "idleTimeout",
            "How long a kept-alive connection may wait for its next request; then closed.",
            check=check_positive_duration,
        ),
    )
    shutdown_grace: timedelta = field(
        default=timedelta(seconds=10),
        metadata=_meta(
            "shutdownGrace",
            "On SIGTERM: how long answers in progress may take to finish before they are cut.",
            check=check_positive_duration,
        ),
    )
    max_connections: int = field(
        default=1000,
        metadata=_meta(
            "maxConnections",
            "Open connections per worker; one more is answered 503 and closed.",
            check=check_positive,
        ),
    )


@dataclass(frozen=True)
class MetricsConfig:
    allowed_cidrs: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "allowedCIDRs",
            "Networks besides loopback that may read /metrics.",
            check=check_cidrs,
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
            check=check_storage_type,
        ),
    )
    valkey: ValkeyConfig = field(default_factory=ValkeyConfig, metadata={"key": "valkey"})


@dataclass(frozen=True)
class Config:
    enabled: bool = field(
        default=True,
        metadata=_meta("enabled", "Must stay true: this site is the authorization server.", check=check_enabled),
    )
    base_url: str = field(
        default="http://127.0.0.1:8000",
        metadata=_meta(
            "baseUrl",
            "Public URL of this server and the OAuth issuer; https unless loopback; no path.",
            check=check_base_url,
        ),
    )
    server_name: str = field(
        default="",
        metadata=_meta(
            "serverName",
            "The name people see on the sign-in, consent and account pages; empty means baseUrl's host.",
            check=check_server_name,
        ),
    )
    provider: str = field(
        default="local",
        metadata=_meta(
            "provider",
            "Where users sign in: local (Django accounts), dex, google or oidc (any OpenID Connect issuer).",
            check=check_provider,
        ),
    )
    dex: DexConfig = field(default_factory=DexConfig, metadata={"key": "dex"})
    google: GoogleConfig = field(default_factory=GoogleConfig, metadata={"key": "google"})
    oidc: OidcConfig = field(default_factory=OidcConfig, metadata={"key": "oidc"})
    storage: StorageConfig = field(default_factory=StorageConfig, metadata={"key": "storage"})
    mcp: McpConfig = field(default_factory=McpConfig, metadata={"key": "mcp"})
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig, metadata={"key": "rateLimit"})
    metrics: MetricsConfig = field(default_factory=MetricsConfig, metadata={"key": "metrics"})
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"key": "server"})
    trusted_proxy_cidrs: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "trustedProxyCIDRs",
            "Proxies whose X-Forwarded-For is believed: the client IP is the right-most hop not in these networks.",
            check=check_cidrs,
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
            check=check_schemes,
        ),
    )
    trusted_public_registration_redirect_uris: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "trustedPublicRegistrationRedirectURIs",
            f"Public https redirect URIs trusted without the token. {_REGISTRATION}",
            check=check_redirect_uris,
        ),
    )
    allowed_redirect_schemes: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "allowedRedirectSchemes",
            "Custom redirect URI schemes clients may register (trusted ones are always allowed).",
            check=check_schemes,
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
    previous_encryption_keys: tuple[bytes, ...] = field(
        default=(),
        metadata=_meta(
            "previousEncryptionKeys",
            "Keys encryptionKey replaced (same encoding, comma- or newline-separated): upstream tokens sealed under "
            "them still open; new ones are sealed under encryptionKey.",
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
            check=check_origins,
        ),
    )
    resource_identifier: str = field(
        default="",
        metadata=_meta(
            "resourceIdentifier",
            "The MCP resource (token audience); empty means baseUrl + /mcp.",
            check=check_resource,
        ),
    )
    database_url: str = field(
        default="",
        metadata=_meta(
            "databaseUrl",
            "postgres:// or sqlite:// URL; empty means the SQLite file var/muster.sqlite3.",
            check=check_database_url,
            aliases=("DATABASE_URL",),
        ),
    )
    secret_key: str = field(
        default="",
        metadata=_meta(
            "secretKey",
            "Django SECRET_KEY, 32 characters or more; empty means generated once and kept under var/.",
            check=check_secret_key,
            secret=True,
        ),
    )
    scopes: tuple[str, ...] = field(
        default=("mcp",),
        metadata=_meta(
            "scopes", "Scopes offered to clients; offline_access is always offered too.", check=check_scopes
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


# --- the declaration flattened: every setting with its YAML key path and environment variable ---


@dataclass(frozen=True)
class Leaf:
    """One setting as the sources and the reference see it."""

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


def _leaves(cls: type, prefix: str = "", env: str = "MUSTER_") -> Iterator[Leaf]:
    for f in fields(cls):
        key = prefix + f.metadata["key"]
        word = f.metadata.get("env") or _env_word(f.metadata["key"])
        if is_dataclass(f.type):
            yield from _leaves(f.type, key + ".", f"{env}{word}_")  # type: ignore[arg-type]
        else:
            yield Leaf(key, env + word, f.type, f.default, f.metadata)


LEAVES = tuple(_leaves(Config))
# Every key a YAML block may hold (with the *File twins), and the sections (mappings) along the way.
KEYS = {leaf.key for leaf in LEAVES} | {leaf.file_key for leaf in LEAVES if leaf.file_key}
SECTIONS = {key.rsplit(".", n)[0] for key in KEYS for n in range(1, key.count(".") + 1)}
