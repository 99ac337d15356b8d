"""Concurrent callers for one key await one run of the work, on this event loop, instead of each doing it."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """The run is shielded: a caller that goes away does not cancel it for the others."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget_run(key, done))
        return await asyncio.shield(task)

    def forget(self, key: Hashable) -> None:
        """Callers from now on start a run of their own (what is running may be out of date)."""
        self._running.pop(key, None)

    def _forget_run(self, key: Hashable, done: "asyncio.Task[T]") -> None:
        if self._running.get(key) is done:
            del self._running[key]
