"""Single flight: at most one run of a piece of work per key at a time, in this process.

Used wherever concurrent requests would otherwise repeat the same expensive work: rendering a
page, refreshing a proxy page from its upstream, loading an account record, reloading a
repository, fetching a file. Callers that arrive while a run is under way share its outcome.
Across processes the cache's locks do the same job; this is the in-process half.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Runs of `work` keyed by `K`, each an asyncio task of its own.

    Promises: while a run for a key is under way, `start` and `run` return or await that run
    instead of starting another; a run is forgotten the moment it finishes (so the next call
    starts afresh); a caller that is cancelled while waiting does not cancel the run (the others
    still get its result); an exception is raised to every waiter and never reported as
    "never retrieved". A run may carry a `state` object that joiners read while it is under way
    (a download's spool, say).
    """

    def __init__(self) -> None:
        self._runs: dict[K, tuple[asyncio.Task[V], Any]] = {}

    def start(
        self, key: K, work: Callable[[], Awaitable[V]], *, state: Any = None
    ) -> asyncio.Task[V]:
        """The run under way for `key`, or a new one of `work()` (with `state`)."""
        running = self._runs.get(key)
        if running is not None:
            return running[0]
        task: asyncio.Task[V] = asyncio.ensure_future(work())
        self._runs[key] = (task, state)
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """The outcome of the run for `key`, joining one under way or starting one."""
        return await asyncio.shield(self.start(key, work))

    def running(self, key: K) -> bool:
        """True while a run for `key` is under way."""
        return key in self._runs

    def state(self, key: K) -> Any:
        """The `state` of the run under way for `key`, or None."""
        running = self._runs.get(key)
        return running[1] if running is not None else None

    def tasks(self) -> list[asyncio.Task[V]]:
        """Every run under way (for shutdown)."""
        return [task for task, _state in self._runs.values()]

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        running = self._runs.get(key)
        if running is not None and running[0] is task:
            del self._runs[key]
        if not task.cancelled():
            task.exception()  # retrieved: waiters re-raise it, nobody else must warn
