"""Benchmark of the rate limiter: µs per take()/atake() in memory and in Redis, beside a no-op and a Redis PING.

Run: .venv/bin/python bench/ratelimit.py [calls]. Uses a throw-away SQLite path (never opened), metric files in
a temporary directory and the in-memory cache; then, when Redis answers on 127.0.0.1:6379, the same limiters with
Valkey storage configured in-process under a key prefix of their own (removed afterwards). Prints medians of
single calls; it asserts nothing.
"""

import asyncio
import dataclasses
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from in_process import median_us, setup_django

setup_django(unset=("REDIS_URL",), metric_files_here=True)  # the database is never opened

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from infra import ratelimit  # noqa: E402
from infra.client_ip import bucket_key, client_ip  # noqa: E402
from infra.ratelimit import TokenBucket, Window  # noqa: E402
from infra.shared_cache import async_redis, sync_redis  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
KEYS = [f"198.51.{n // 256}.{n % 256}" for n in range(10_000)]


async def per_await_us(action: Callable[[], Awaitable[object]], calls: int) -> float:
    """Median of `calls` single awaits on one event loop, in microseconds."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def noop() -> None:
    return None


async def anoop() -> None:
    return None


def cycling(keys: list[str]) -> Callable[[], str]:
    """A function returning the next key of `keys` on each call, round and round."""
    position = [0]

    def next_key() -> str:
        position[0] = (position[0] + 1) % len(keys)
        return keys[position[0]]

    return next_key


def show(label: str, micros: float, baseline: float | None = None) -> None:
    ratio = f"   {micros / baseline:7.1f} times the baseline" if baseline else ""
    print(f"  {label:<52} {micros:9.2f} µs{ratio}")


def sync_figures(calls: int, round_trip: Callable[[], object] | None) -> None:
    """take() allowed on one key and on 10,000 keys, refused, and a Window, beside the baseline."""
    baseline = median_us(round_trip or noop, calls)
    show("baseline: " + ("one Redis PING (django-redis client)" if round_trip else "a no-op call"), baseline)
    open_bucket, closed_bucket = TokenBucket("bench", 1e9, 10**9), TokenBucket("bench-closed", 1e-6, 1)
    closed_bucket.take("k")
    window, next_key = Window("bench-window", 10**9, 3600), cycling(KEYS)
    show("take(), allowed, one key", median_us(lambda: open_bucket.take("k"), calls), baseline)
    show("take(), allowed, 10,000 keys in turn", median_us(lambda: open_bucket.take(next_key()), calls), baseline)
    show("take(), refused", median_us(lambda: closed_bucket.take("k"), calls), baseline)
    show("Window.take(), allowed", median_us(lambda: window.take("k"), calls), baseline)


async def async_figures(calls: int, with_redis: bool) -> None:
    """atake() allowed and refused on one event loop, beside the baseline."""
    if with_redis:
        client = async_redis()
        assert client is not None
        await client.ping()  # connect outside the measurement
        baseline = await per_await_us(client.ping, calls)
        show("baseline: one Redis PING (redis.asyncio client)", baseline)
    else:
        baseline = await per_await_us(anoop, calls)
        show("baseline: awaiting a no-op coroutine", baseline)
    open_bucket, closed_bucket = TokenBucket("bench", 1e9, 10**9), TokenBucket("bench-closed", 1e-6, 1)
    await closed_bucket.atake("k")
    show("atake(), allowed, one key", await per_await_us(lambda: open_bucket.atake("k"), calls), baseline)
    show("atake(), refused", await per_await_us(lambda: closed_bucket.atake("k"), calls), baseline)


def client_ip_figures(calls: int) -> None:
    baseline = median_us(noop, calls)
    proxies = ("10.0.0.0/8", "2001:db8:ffff::/48")
    chain = "192.0.2.66, 198.51.100.9, 10.1.1.1, 10.2.2.2"
    show("baseline: a no-op call", baseline)
    show("client_ip(), no trusted proxies", median_us(lambda: client_ip("203.0.113.7", chain, ()), calls), baseline)
    hops = median_us(lambda: client_ip("10.3.3.3", chain, proxies), calls)
    show("client_ip(), through 3 trusted hops", hops, baseline)
    show("bucket_key(), IPv4, same address (cached)", median_us(lambda: bucket_key("198.51.100.9"), calls), baseline)
    v4, v6 = cycling(KEYS), cycling([f"2001:db8:{n:x}::7" for n in range(10_000)])
    show("bucket_key(), 10,000 IPv4 addresses in turn", median_us(lambda: bucket_key(v4()), calls), baseline)
    show("bucket_key(), 10,000 IPv6 addresses in turn → /64", median_us(lambda: bucket_key(v6()), calls), baseline)


def redis_reachable() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def redis_settings(prefix: str) -> override_settings:
    """The site's settings with Valkey storage on the local Redis under `prefix`."""
    config = settings.MUSTER_CONFIG
    valkey = dataclasses.replace(config.storage.valkey, url=REDIS_URL, key_prefix=prefix)
    storage = dataclasses.replace(config.storage, type="valkey", valkey=valkey)
    return override_settings(MUSTER_CONFIG=dataclasses.replace(config, storage=storage))  # CACHES follows


def redis_part(calls: int) -> None:
    if not redis_reachable():
        print(f"\nRedis: skipped (nothing answers PING on {REDIS_URL})")
        return
    prefix = f"bench-ratelimit-{secrets.token_hex(4)}:"
    try:
        with redis_settings(prefix):
            sync_redis().ping()  # connect outside the measurement
            print(f"\nRedis ({REDIS_URL}), sync take() from a Django view's thread:")
            sync_figures(calls, sync_redis().ping)
            print("Redis, atake() on the event loop (redis.asyncio, no thread hop):")
            asyncio.run(async_figures(calls, with_redis=True))
    finally:
        with redis.Redis.from_url(REDIS_URL) as client:
            for key in client.scan_iter(match=prefix + "*", count=500):
                client.delete(key)


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    ratelimit.reset()
    print(f"calls: {calls} (median µs per call), Python {sys.version.split()[0]}")
    print("\nin process memory (no Valkey storage), sync take():")
    sync_figures(calls, None)
    print("in process memory, atake() on the event loop:")
    asyncio.run(async_figures(calls, with_redis=False))
    print("\nclient address:")
    client_ip_figures(calls)
    redis_part(max(1000, calls // 4))


if __name__ == "__main__":
    main()
