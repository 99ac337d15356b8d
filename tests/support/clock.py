"""A clock tests move forward instead of sleeping, for code that reads the time through a module's `time`."""

import time
from typing import Any


class ShiftedClock:
    """Stands in for the `time` module where only `time.time()` is read: real time plus what the test added."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def local_cache_clock(settings: Any, monkeypatch: Any) -> ShiftedClock:
    """The shared cache as Django's in-process cache, whose expiry reads this clock (for rules built on a cache
    entry's timeout; the cache backends' own expiry is theirs to test)."""
    from django.core.cache.backends import locmem

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "clock"}}
    clock = ShiftedClock()
    monkeypatch.setattr(locmem, "time", clock)
    return clock
