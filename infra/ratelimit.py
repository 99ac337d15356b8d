"""Rate limits: token buckets and fixed windows, shared in Redis/Valkey when configured, else in process memory."""

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import redis.exceptions
from django.conf import settings

from infra import metrics
from infra.config import RateLimitConfig
from infra.shared_cache import async_redis, sync_redis

log = logging.getLogger("muster.ratelimit")

MAX_MEMORY_KEYS = 100_000  # per limiter; the least recently used key goes first beyond this
ASYNC_TIMEOUT_SECONDS = 1.0  # /mcp never waits longer than this on the limiter's store
WARNING_INTERVAL_SECONDS = 60.0
BACKEND_ERRORS = (redis.exceptions.RedisError, OSError)  # OSError includes TimeoutError

# Tokens refill continuously from the server's clock; an untouched bucket expires once it would be full again.
TOKEN_BUCKET_LUA = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens, stamp = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ms', now)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return wait_ms
"""

# A counter that starts its window on the first hit; a key left without expiry (never expected) is given one.
WINDOW_LUA = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Decision:
    """Whether a request may pass; if not, the whole seconds (≥ 1) until one would."""

    allowed: bool
    retry_after: int


ALLOWED = Decision(allowed=True, retry_after=0)


class _Script:
    """One Lua script, registered with redis-py on first use: EVALSHA, and SCRIPT LOAD when the server lacks it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._sync: Any = None
        self._async: Any = None

    def run(self, client: Any, keys: Sequence[str], args: Sequence[float | int]) -> Any:
        if self._sync is None:
            self._sync = client.register_script(self.text)
        return self._sync(keys, args, client=client)

    async def arun(self, client: Any, keys: Sequence[str], args: Sequence[float | int]) -> Any:
        if self._async is None:
            self._async = client.register_script(self.text)
        async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
            return await self._async(keys, args, client=client)


_TOKEN_BUCKET = _Script(TOKEN_BUCKET_LUA)
_WINDOW = _Script(WINDOW_LUA)


class _MemoryBuckets:
    """Token buckets in this process: thread-safe, least recently used first out, idle (full) buckets dropped."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.full_after = burst / rate
        self.entries: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when counted)
        self.lock = threading.Lock()

    def take(self, key: str, cost: int) -> float:
        """0 when taken, else the seconds until `cost` tokens are there."""
        with self.lock:
            now = self.clock()
            self._evict(now)
            tokens, stamp = self.entries.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
            wait = 0.0 if tokens >= cost else (cost - tokens) / self.rate
            self.entries[key] = (tokens - cost if wait == 0.0 else tokens, now)
            return wait

    def _evict(self, now: float) -> None:
        entries = self.entries
        while entries:
            stamp = entries[next(iter(entries))][1]
            if len(entries) < MAX_MEMORY_KEYS and now - stamp < self.full_after:
                return
            entries.popitem(last=False)


class _MemoryWindows:
    """Fixed-window counters in this process: thread-safe, ended windows dropped, oldest first out when full."""

    def __init__(self, seconds: int, clock: Callable[[], float]) -> None:
        self.seconds, self.clock = seconds, clock
        self.entries: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, window end)
        self.lock = threading.Lock()

    def hit(self, key: str) -> tuple[int, float]:
        """The count including this hit, and the seconds left in the window."""
        with self.lock:
            now = self.clock()
            self._evict(now)
            count, end = self.entries.get(key, (0, now + self.seconds))
            self.entries[key] = (count + 1, end)  # an existing key keeps its place: the order is by window end
            return count + 1, end - now

    def _evict(self, now: float) -> None:
        entries = self.entries
        while entries:
            end = entries[next(iter(entries))][1]
            if len(entries) < MAX_MEMORY_KEYS and end > now:
                return
            entries.popitem(last=False)


class TokenBucket:
    """`burst` requests at once, then `rate` a second, per key; in Redis/Valkey when configured (every worker)."""

    def __init__(self, name: str, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate limiter {name}: rate must be > 0 and burst ≥ 1, got {rate} and {burst}")
        self.name, self.rate, self.burst = name, float(rate), int(burst)
        self.idle_ms = math.ceil(self.burst / self.rate * 1000) + 1000  # by then an untouched bucket is full
        self.memory = _MemoryBuckets(self.rate, self.burst, clock)

    def take(self, key: str, cost: int = 1) -> Decision:
        """Take `cost` tokens from `key`'s bucket (for Django views)."""
        self._check(cost)
        try:
            client = sync_redis()
            if client is None:
                return self._decide(self.memory.take(key, cost))
            wait_ms = _TOKEN_BUCKET.run(client, [self._redis_key(key)], self._args(cost))
        except BACKEND_ERRORS as exc:
            return _failed_open(exc)
        return self._decide(int(wait_ms) / 1000)

    async def atake(self, key: str, cost: int = 1) -> Decision:
        """Take `cost` tokens from `key`'s bucket without leaving the event loop (for the /mcp consumer)."""
        self._check(cost)
        try:
            client = async_redis()
            if client is None:
                return self._decide(self.memory.take(key, cost))
            wait_ms = await _TOKEN_BUCKET.arun(client, [self._redis_key(key)], self._args(cost))
        except BACKEND_ERRORS as exc:
            return _failed_open(exc)
        return self._decide(int(wait_ms) / 1000)

    def _check(self, cost: int) -> None:
        if not 1 <= cost <= self.burst:
            raise ValueError(f"rate limiter {self.name}: cost must be between 1 and the burst {self.burst}, got {cost}")

    def _args(self, cost: int) -> list[float | int]:
        return [self.rate, self.burst, cost, self.idle_ms]

    def _redis_key(self, key: str) -> str:
        return _redis_key(self.name, key)

    def _decide(self, wait_seconds: float) -> Decision:
        if wait_seconds <= 0:
            return ALLOWED
        return _refused(self.name, wait_seconds)


class Window:
    """At most `limit` hits per key in a fixed window that starts with the key's first hit (e.g. per hour)."""

    def __init__(
        self, name: str, limit: int, window_seconds: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_seconds < 1:
            raise ValueError(f"rate limiter {name}: limit and window must be ≥ 1, got {limit} and {window_seconds}")
        self.name, self.limit, self.window_seconds = name, limit, window_seconds
        self.memory = _MemoryWindows(window_seconds, clock)

    def take(self, key: str) -> Decision:
        """Count one hit for `key`; refused past the limit until the window ends."""
        try:
            client = sync_redis()
            if client is None:
                count, seconds_left = self.memory.hit(key)
            else:
                count, ttl_ms = _WINDOW.run(client, [_redis_key(self.name, key)], [self.window_seconds * 1000])
                count, seconds_left = int(count), int(ttl_ms) / 1000
        except BACKEND_ERRORS as exc:
            return _failed_open(exc)
        if count <= self.limit:
            return ALLOWED
        return _refused(self.name, seconds_left)


# --- the site's limiters, built from the configuration of the moment ---


def per_ip() -> TokenBucket:
    """Per client IP (key: `client_ip.bucket_key(...)`) on every OAuth endpoint and /mcp."""
    limits = _limits()
    return _bucket("ip", limits.ip_rate, limits.ip_burst)


def per_user() -> TokenBucket:
    """Per signed-in user on /mcp and per confidential client on /oauth/token and /oauth/revoke."""
    limits = _limits()
    return _bucket("user", limits.user_rate, limits.user_burst)


def registrations() -> Window:
    """Client registrations per IP per hour."""
    return _window("registration", _limits().registrations_per_hour, 3600)


def cimd_fetches() -> TokenBucket:
    """Client ID Metadata Document fetches per host."""
    limits = _limits()
    return _bucket("cimd", limits.cimd_rate, limits.cimd_burst)


def security_log_allows(user: str, client: str, event: str) -> bool:
    """Whether one more security-event log line for this (user, client, event) may be written."""
    limits = _limits()
    key = ":".join(quote(part, safe="") for part in (user, client, event))
    return _bucket("security_log", limits.security_log_rate, limits.security_log_burst).take(key).allowed


def reset() -> None:
    """Forget every limiter built so far (their in-memory counts too) and the warning timer; for tests."""
    global _last_warning
    _bucket.cache_clear()
    _window.cache_clear()
    _last_warning = -math.inf


def _limits() -> RateLimitConfig:
    return settings.MUSTER_CONFIG.rate_limit


@lru_cache(maxsize=32)
def _bucket(name: str, rate: float, burst: int) -> TokenBucket:
    return TokenBucket(name, rate, burst)


@lru_cache(maxsize=8)
def _window(name: str, limit: int, window_seconds: int) -> Window:
    return Window(name, limit, window_seconds)


# --- shared helpers ---


def _redis_key(name: str, key: str) -> str:
    return f"{settings.MUSTER_CONFIG.storage.valkey.key_prefix}ratelimit:{name}:{key}"


def _refused(name: str, wait_seconds: float) -> Decision:
    metrics.rate_limited(name)
    return Decision(allowed=False, retry_after=max(1, math.ceil(wait_seconds)))


_last_warning = -math.inf
_warning_lock = threading.Lock()


def _failed_open(exc: BaseException) -> Decision:
    """The store failed: let the request through, count it, and warn at most once a minute."""
    global _last_warning
    metrics.rate_limit_backend_error()
    now = time.monotonic()
    with _warning_lock:
        if now - _last_warning < WARNING_INTERVAL_SECONDS:
            return ALLOWED
        _last_warning = now
    log.warning("Rate limiting is off while its store fails; requests are let through: %s: %s", type(exc).__name__, exc)
    return ALLOWED
