"""The Django and django-oauth-toolkit settings the typed configuration governs, derived again whenever it changes."""

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.conf import settings
from django.core.signals import setting_changed

from infra.config import OFFLINE_ACCESS, Config

AUTHORIZATION_CODE_SECONDS = 60
REDIS_TIMEOUT_SECONDS = 1.0
REDIS_MAX_CONNECTIONS = 50  # per pool and process; commands take well under a millisecond
# PostgreSQL pool (muster has no settings for it): a request waits this long for a connection, then answers 503.
POOL_TIMEOUT_SECONDS = 3.0
# The pool retries a lost connection with growing waits (1 s, 2 s, 4 s …); after this long it gives up until the
# next request asks, so the waits stay short and a database that comes back is used within a few seconds.
POOL_RECONNECT_SECONDS = 5.0
# Django opens its connections from DATABASES once: a running process cannot follow a new databaseUrl.
FIXED_AT_START = frozenset({"DATABASES"})


def derived_settings(config: Config, var_dir: Path) -> dict[str, Any]:
    """Every Django setting whose value depends on the configuration."""
    host = urlsplit(config.base_url).hostname or "127.0.0.1"
    https = config.base_url.startswith("https://")
    return {
        "SECRET_KEY": config.secret_key or _kept_secret_key(var_dir),
        "ALLOWED_HOSTS": sorted({host, "127.0.0.1", "localhost", "[::1]"}),
        "CSRF_TRUSTED_ORIGINS": [config.base_url],
        "SESSION_COOKIE_SECURE": https,
        "CSRF_COOKIE_SECURE": https,
        "DATABASES": {"default": _database(config.database_url, var_dir)},
        "CACHES": {"default": _cache(config)},
        "OAUTH2_PROVIDER": _oauth2_provider(config),
    }


# What the receivers of setting_changed (Django's cache handler, DOT's oauth2_settings) last heard from us.
_announced: dict[str, Any] = {}


def follow_the_config(*, setting: str, enter: bool, **kwargs: Any) -> None:
    """setting_changed receiver: when MUSTER_CONFIG changes (override_settings, pytest-django's `settings`), the
    settings derived from it follow, on the settings in force, and their own receivers hear of it.

    Entering an override, a derived setting follows where the new config derives another value from it, unless
    something else set it since it was derived (a test's own override and the test runner's host stay). Leaving
    one, the outer settings are as they were; receivers told of inner values are told again.
    """
    if setting != "MUSTER_CONFIG":
        return
    derived = derived_settings(settings.MUSTER_CONFIG, settings.VAR_DIR)
    # The settings an override replaced, as override_settings keeps them.
    outer = settings._wrapped.default_settings if enter else settings
    before = derived_settings(outer.MUSTER_CONFIG, settings.VAR_DIR) if enter else derived
    for name, value in derived.items():
        if name in FIXED_AT_START:
            continue
        was = getattr(settings, name)
        if value != before[name] and was == before[name]:
            setattr(settings, name, value)
        now = getattr(settings, name)
        if now != _announced.get(name, was):
            setting_changed.send(sender=type(settings._wrapped), setting=name, value=now, enter=enter)
        _announced[name] = now


def _kept_secret_key(var_dir: Path) -> str:
    """The key generated on first run and kept under var/ (never committed)."""
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _database(url: str, var_dir: Path) -> dict[str, Any]:
    if not url:
        var_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{var_dir / 'muster.sqlite3'}"
    db = dj_database_url.parse(url)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE transactions serialise writers instead of failing lock upgrades under concurrency.
        db["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    else:
        # Not psycopg's 30 s and 5 min (see the constants); health checks replace connections a database restart
        # broke before a request gets one.
        db["OPTIONS"] = {"pool": {"timeout": POOL_TIMEOUT_SECONDS, "reconnect_timeout": POOL_RECONNECT_SECONDS}}
        db["CONN_MAX_AGE"] = 0
        db["CONN_HEALTH_CHECKS"] = True
    return db


def _cache(config: Config) -> dict[str, Any]:
    if config.storage.type != "valkey":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "muster"}
    valkey = config.storage.valkey
    url = valkey.url
    if valkey.tls_enabled and url.startswith("redis://"):
        url = "rediss://" + url.removeprefix("redis://")
    options: dict[str, Any] = {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "DB": valkey.db,
        # A Valkey that hangs must not hold requests: limits fail open, caches miss, after a second.
        "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT_SECONDS,
        "SOCKET_TIMEOUT": REDIS_TIMEOUT_SECONDS,
        # Bounded and reused: past the bound a request waits that same second for a free connection, then fails.
        "CONNECTION_POOL_CLASS": "infra.redis_outage.FailFastPool",
        "CONNECTION_POOL_KWARGS": {"max_connections": REDIS_MAX_CONNECTIONS, "timeout": REDIS_TIMEOUT_SECONDS},
    }
    if valkey.password:
        options["PASSWORD"] = valkey.password
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": valkey.key_prefix,
        "KEY_FUNCTION": "infra.shared_cache.cache_key",
        "OPTIONS": options,
    }


def _oauth2_provider(config: Config) -> dict[str, Any]:
    scopes = {scope: f"Use the MCP server ({scope})" for scope in config.scopes}
    scopes[OFFLINE_ACCESS] = "Stay signed in (refresh tokens)"
    return {
        "PKCE_REQUIRED": True,
        "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
        "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
        "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
        "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
        "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
        "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
        "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
        "ROTATE_REFRESH_TOKEN": True,
        # Our 60 s race grace (oauth_server.extensions.refresh_grace) works with hashed storage; DOT's needs plaintext.
        "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
        "ACCESS_TOKEN_EXPIRE_SECONDS": int(config.access_token_lifetime.total_seconds()),
        "REFRESH_TOKEN_EXPIRE_SECONDS": int(config.session_duration.total_seconds()),
        "AUTHORIZATION_CODE_EXPIRE_SECONDS": AUTHORIZATION_CODE_SECONDS,
        "ALLOW_LOCALHOST_LOOPBACK": config.allow_localhost_redirect_uris,
        "ALLOWED_REDIRECT_URI_SCHEMES": [
            "http",
            "https",
            *config.trusted_public_registration_schemes,
            *config.allowed_redirect_schemes,
        ],
        "ALLOW_URI_WILDCARDS": False,
        "SCOPES": scopes,
        "DEFAULT_SCOPES": list(config.scopes),
        "CLIENT_SECRET_HASHER": "muster_client_secret_sha256",
        "OAUTH2_SERVER_CLASS": "oauth_server.server.MusterServer",
        "OAUTH2_VALIDATOR_CLASS": "oauth_server.validators.MusterValidator",
        "OIDC_ISS_ENDPOINT": config.issuer,
        "OAUTH2_PROTECTED_RESOURCE_IDENTIFIER": config.mcp_resource,
        "OAUTH2_PROTECTED_RESOURCE_AUTHORIZATION_SERVERS": [config.issuer],
        "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
        "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
        "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_basic", "client_secret_post"],
        # /oauth/register applies muster's gates itself (oauth_server.clients.registration) and never issues
        # registration access tokens; DOT's permission classes are not consulted and stay fail-closed.
        "DCR_ENABLED": True,
        "CIMD_ENABLED": config.enable_cimd,
        "CIMD_METADATA_FETCHER": "oauth_server.clients.cimd.PolicyFetcher",
        "CIMD_METADATA_MAX_AGE_SECONDS": 3600,  # muster caps a document's max-age at one hour
        "CIMD_FAILURE_BACKOFF_SECONDS": 300,  # muster remembers a failed document for five minutes
        "APPLICATION_ADMIN_CLASS": "oauth_server.admin.ClientAdmin",
        "REFRESH_TOKEN_ADMIN_CLASS": "oauth_server.admin.RefreshTokenAdmin",
    }
