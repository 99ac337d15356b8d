"""The shared cache in tests: put it on a Redis under a prefix, and empty only what is ours."""

import dataclasses
from typing import Any

from django.core.cache import cache


def use_redis(settings: Any, url: str, prefix: str) -> None:
    """Put the shared cache (and so locks, limits and token caching) on a real Redis under `prefix`."""
    valkey = dataclasses.replace(settings.MUSTER_CONFIG.storage.valkey, url=url, key_prefix=prefix)
    storage = dataclasses.replace(settings.MUSTER_CONFIG.storage, type="valkey", valkey=valkey)
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, storage=storage)


def clear_shared_cache() -> None:
    """Empty the cache between tests; on Redis only the keys under our prefix (never empty, see tests.settings)."""
    if hasattr(cache, "delete_pattern"):
        assert cache.key_prefix, "an empty key prefix would match every key on the server"
        cache.delete_pattern("*")
    else:
        cache.clear()
