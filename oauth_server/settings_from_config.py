"""Turns the typed configuration into the Django and django-oauth-toolkit settings it governs."""

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url

from infra.config import Config

AUTHORIZATION_CODE_SECONDS = 60
OFFLINE_ACCESS = "offline_access"
REDIS_TIMEOUT_SECONDS = 1.0


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
        "MUSTER_REFRESH_GRACE_SECONDS": int(config.refresh_grace_period.total_seconds()),
    }


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
        db["OPTIONS"] = {"pool": True}
        db["CONN_MAX_AGE"] = 0
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
    }
    if valkey.password:
        options["PASSWORD"] = valkey.password
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": valkey.key_prefix,
        "KEY_FUNCTION": "oauth_server.settings_from_config.cache_key",
        "OPTIONS": options,
    }


def cache_key(key: str, key_prefix: str, version: int) -> str:
    """Cache keys as muster lays them out: the configured prefix, then the key."""
    return f"{key_prefix}{key}"


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
        # /oauth/register applies muster's gates itself (oauth_server.registration) and never issues
        # registration access tokens; DOT's permission classes are not consulted and stay fail-closed.
        "DCR_ENABLED": True,
        "CIMD_ENABLED": config.enable_cimd,
        "CIMD_METADATA_FETCHER": "oauth_server.cimd.PolicyFetcher",
        "CIMD_METADATA_MAX_AGE_SECONDS": 3600,  # muster caps a document's max-age at one hour
        "CIMD_FAILURE_BACKOFF_SECONDS": 300,  # muster remembers a failed document for five minutes
        "APPLICATION_ADMIN_CLASS": "oauth_server.admin.ClientAdmin",
        "REFRESH_TOKEN_ADMIN_CLASS": "oauth_server.admin.RefreshTokenAdmin",
    }
