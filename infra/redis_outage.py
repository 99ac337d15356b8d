"""Once Redis fails to answer, this process stops asking it for a moment: a request pays one timeout, not one a call.

The pools (django-redis's and the asyncio one) build their connections from these classes. A connect,
send or read that times out or is refused marks that server down for `HOLD_SECONDS`; until then every
call to it fails at once with `RedisMarkedDown` (a `redis.ConnectionError`, so every caller already
treats it as an outage: limits fail open, caches miss, locks are unavailable).
"""

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection

log = logging.getLogger(__name__)

HOLD_SECONDS = 1.0  # as long as one connect or read timeout
OUTAGES = (redis.ConnectionError, redis.TimeoutError)

clock: Callable[[], float] = time.monotonic  # tests move it instead of sleeping
_down_until: dict[str, float] = {}


class RedisMarkedDown(redis.ConnectionError):
    """Redis failed to answer a moment ago: not asked again yet."""


def forget() -> None:
    """Ask every server again at once (tests starting a fresh one, perhaps on a port that failed before)."""
    _down_until.clear()


def _server(connection: Any) -> str:
    return str(getattr(connection, "path", "") or f"{connection.host}:{connection.port}")


def _check(connection: Any) -> None:
    if clock() < _down_until.get(_server(connection), -1.0):
        raise RedisMarkedDown(f"Redis at {_server(connection)} failed to answer a moment ago; not asked yet")


@contextmanager
def _watched(connection: Any) -> Iterator[None]:
    _check(connection)
    try:
        yield
    except RedisMarkedDown:
        raise
    except OUTAGES as exc:
        _down_until[_server(connection)] = clock() + HOLD_SECONDS
        log.warning("Redis at %s failed (%s); not asked again for %.0f s", _server(connection), exc, HOLD_SECONDS)
        raise


class _FailFast:
    """For redis-py's sync connections."""

    def connect(self) -> None:
        with _watched(self):
            super().connect()  # type: ignore[misc]

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        with _watched(self):
            super().send_packed_command(*args, **kwargs)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        with _watched(self):
            return super().read_response(*args, **kwargs)  # type: ignore[misc]


class _AsyncFailFast:
    """For redis-py's asyncio connections."""

    async def connect(self) -> None:
        with _watched(self):
            await super().connect()  # type: ignore[misc]

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        with _watched(self):
            await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        with _watched(self):
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]


@functools.cache
def _failing_fast(mixin: type, connection_class: type) -> type:
    """The URL's connection class (TCP, TLS or Unix socket) with the mixin in front."""
    return type(f"FailFast{connection_class.__name__}", (mixin, connection_class), {})


class FailFastPool(redis.BlockingConnectionPool):
    """django-redis's pool (CONNECTION_POOL_CLASS): bounded, blocking, and failing fast during an outage."""

    def __init__(self, *, connection_class: type = redis.Connection, **kwargs: Any) -> None:
        super().__init__(connection_class=_failing_fast(_FailFast, connection_class), **kwargs)


class AsyncFailFastPool(redis.asyncio.BlockingConnectionPool):
    """The asyncio pool of the /mcp path: the same, for one event loop."""

    def __init__(self, *, connection_class: type = redis.asyncio.connection.Connection, **kwargs: Any) -> None:
        super().__init__(connection_class=_failing_fast(_AsyncFailFast, connection_class), **kwargs)
