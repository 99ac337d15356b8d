"""A request's deadline: work still running past it is abandoned before it commits, never finished late."""

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

clock: Callable[[], float] = time.monotonic  # tests move it instead of sleeping
_deadline: ContextVar[float] = ContextVar("deadline", default=math.inf)


@contextmanager
def deadline_in(seconds: float) -> Iterator[None]:
    """Work inside must end within `seconds` (or by an earlier deadline already set)."""
    token = _deadline.set(min(_deadline.get(), clock() + seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def passed() -> bool:
    """Whether the current deadline has passed (never, outside `deadline_in`)."""
    return clock() >= _deadline.get()
