"""A mutual-exclusion lock in the shared cache, so every worker and replica serialises on the same key."""

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache


class LockTimeout(Exception):
    """The lock stayed taken for longer than the caller was willing to wait."""


@contextmanager
def cache_lock(name: str, ttl_seconds: int = 15, wait_seconds: float = 10.0) -> Iterator[None]:
    """Hold `lock:<name>`; the TTL frees it if the holder dies, the owner token stops freeing another's lock."""
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
