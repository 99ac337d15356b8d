"""Direct Redis/Valkey clients for the /mcp hot path: redis.asyncio (no thread hop) and django-redis's own."""

import asyncio
import time
import weakref
from typing import Any

import redis.asyncio
from django.conf import settings

from infra.redis_outage import AsyncFailFastPool

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]" = weakref.WeakKeyDictionary()


def async_redis() -> redis.asyncio.Redis | None:
    """This event loop's client (asyncio connections belong to one loop), or None without Valkey storage.

    Its pool has the bound and the timeouts of the Django cache's (CACHES OPTIONS), and is reused for the loop's life.
    """
    if settings.CACHES["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        return None
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        options: dict[str, Any] = settings.CACHES["default"]["OPTIONS"]
        pool = AsyncFailFastPool.from_url(
            settings.CACHES["default"]["LOCATION"],
            db=options.get("DB", 0),
            password=options.get("PASSWORD"),
            socket_connect_timeout=options.get("SOCKET_CONNECT_TIMEOUT"),
            socket_timeout=options.get("SOCKET_TIMEOUT"),
            **options.get("CONNECTION_POOL_KWARGS", {}),
        )
        _clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return _clients[loop]


def sync_redis() -> Any:
    """The raw client behind the Django cache, or None without Valkey storage."""
    if settings.CACHES["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


_local: dict[str, tuple[float, str]] = {}


async def shared_get(key: str) -> str | None:
    """A value every worker sees when Valkey is configured; process memory otherwise (one worker)."""
    client = async_redis()
    if client is not None:
        value = await client.get(key)
        return value.decode() if value is not None else None
    entry = _local.get(key)
    return entry[1] if entry and entry[0] > time.monotonic() else None


async def shared_add(key: str, value: str, ttl_seconds: int) -> None:
    """Set `key` unless it is already set."""
    client = async_redis()
    if client is not None:
        await client.set(key, value, ex=ttl_seconds, nx=True)
        return
    if await shared_get(key) is None:
        _local[key] = (time.monotonic() + ttl_seconds, value)


def cache_key(key: str, key_prefix: str, version: int) -> str:
    """The cache's KEY_FUNCTION: keys as muster lays them out, the configured prefix, then the key."""
    return f"{key_prefix}{key}"
