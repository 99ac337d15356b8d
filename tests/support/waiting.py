"""Waiting for something a real thread, process or event loop does: poll the condition with a generous deadline
(a loaded machine is slow, a passing check returns at once) instead of sleeping a guessed time."""

import asyncio
import threading
import time
from collections.abc import Callable

DEADLINE_SECONDS = 30.0
POLL_SECONDS = 0.02


def eventually(check: Callable[[], bool], seconds: float = DEADLINE_SECONDS) -> bool:
    """Whether `check()` comes true within `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


async def eventually_async(check: Callable[[], bool], seconds: float = DEADLINE_SECONDS) -> bool:
    """Whether `check()` comes true within `seconds`, letting the event loop run meanwhile."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


def threads_finished(name: str, seconds: float = DEADLINE_SECONDS) -> bool:
    """Wait for every running thread called `name` (background work the code under test started) to end."""
    deadline = time.monotonic() + seconds
    for thread in [thread for thread in threading.enumerate() if thread.name == name]:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return not any(thread.name == name for thread in threading.enumerate())
