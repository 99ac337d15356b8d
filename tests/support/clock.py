"""Clocks tests move forward instead of sleeping: for a module's `time`, or for a clock function it reads."""

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


class ManualClock:
    """A monotonic clock function the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LateClock:
    """A request's clock: the first reading (its start) is 0, every later one `late_by` seconds on."""

    def __init__(self, late_by: float) -> None:
        self.readings = 0
        self.late_by = late_by

    def __call__(self) -> float:
        self.readings += 1
        return 0.0 if self.readings == 1 else self.late_by


def local_cache_clock(settings: Any, monkeypatch: Any) -> ShiftedClock:
    """The shared cache as Django's in-process cache, whose expiry reads this clock (for rules built on a cache
    entry's timeout; the cache backends' own expiry is theirs to test)."""
    from django.core.cache.backends import locmem

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "clock"}}
    clock = ShiftedClock()
    monkeypatch.setattr(locmem, "time", clock)
    return clock
