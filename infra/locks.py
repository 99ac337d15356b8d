"""A mutual-exclusion lock in the shared cache, so every worker and replica serialises on the same key."""

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.core.cache import cache

from infra.shared_cache import sync_redis

log = logging.getLogger(__name__)


class LockTimeout(Exception):
    """The lock stayed taken for longer than the caller was willing to wait."""


@contextmanager
def cache_lock(name: str, ttl_seconds: float = 15, wait_seconds: float = 10.0) -> Iterator[None]:
    """Hold `lock:<name>`; the TTL frees it if the holder dies, and only its owner ever frees it.

    On Redis this is redis-py's lock: the release is one compare-and-delete script, so a holder whose
    lock expired and was taken by another worker frees nothing. A release that fails (Redis gone after
    the work was done) is logged, not raised: the TTL frees the lock, and the work stands. A Redis that cannot
    be reached to take the lock is an outage (`infra.outages`): its error goes up, and the caller's 503 says so.
    """
    client = sync_redis()
    if client is None:
        with _process_lock(name, ttl_seconds, wait_seconds):
            yield
        return
    lock = client.lock(cache.make_key(f"lock:{name}"), timeout=ttl_seconds, sleep=0.02, blocking_timeout=wait_seconds)
    if not lock.acquire():
        raise LockTimeout(name)
    try:
        yield
    finally:
        try:
            lock.release()
        except redis.RedisError as exc:
            log.warning("lock %s not released (%s); its TTL frees it", name, exc)


@contextmanager
def _process_lock(name: str, ttl_seconds: float, wait_seconds: float) -> Iterator[None]:
    """The same lock in a cache of this process only (one worker, no Redis): the cache's own lock orders it."""
    key = f"lock:{name}"
    owner = secrets.token_hex(8)
    deadline = time.monotonic() + wait_seconds
    while not cache.add(key, owner, timeout=ttl_seconds):
        if time.monotonic() >= deadline:
            raise LockTimeout(name)
        time.sleep(0.02)
    try:
        yield
    finally:
        if cache.get(key) == owner:
            cache.delete(key)
