"""The shared services (PostgreSQL, Redis) those DATABASE_URL and REDIS_URL name, else CI's on loopback.

Tests only create databases of their own there (dropped after) and only write keys under a prefix of their own
(deleted after); a test that must flush or reconfigure a server starts its own (tests.servers.redis_process).
Where a service is absent the test is skipped with the reason, and fails on CI (tests.servers.optional).
"""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from tests.servers.optional import unavailable

_DATABASE_URL = os.environ.get("DATABASE_URL", "")
POSTGRES_ADMIN_URL = (
    _DATABASE_URL
    if _DATABASE_URL.startswith(("postgres://", "postgresql://"))
    else "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def unique_prefix(purpose: str) -> str:
    """A key prefix no other test (of this run or another) uses, e.g. `ratelimit-test-1a2b3c4d5e6f:`."""
    return f"{purpose}-{secrets.token_hex(6)}:"


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def require_postgres() -> str:
    """The admin URL of the PostgreSQL, once it answers within 2 s."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2):
            pass
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL not reachable on {_host_port(POSTGRES_ADMIN_URL)}: {exc}")
    return POSTGRES_ADMIN_URL


def require_redis() -> str:
    """The URL of the Redis/Valkey, once it answers PING within 2 s."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable on {_host_port(REDIS_URL)}: {exc}")
    return REDIS_URL


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database `e2e_<random>`, dropped (connections and all) afterwards; yields its URL."""
    name = f"e2e_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def delete_redis_keys(redis_url: str, prefix: str) -> None:
    """Remove what was written under `prefix`, and nothing else."""
    assert prefix, "an empty prefix would match every key"
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2) as client:
        for key in client.scan_iter(match=prefix + "*", count=500):
            client.delete(key)
