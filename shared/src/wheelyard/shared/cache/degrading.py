"""A cache that degrades instead of failing when its remote backend (Redis) is down.

The cache is an accelerator, so its outage must cost speed, not requests (docs/architecture.md,
"Stores"). Reads miss, writes are skipped, counters and locks fall back to this process (rate
limits become per-process caps, neither 500s nor wide open, cf. jsocol/django-ratelimit#333;
locks become per-process single-flight, which at worst duplicates a fetch, since the database's
unique constraints, not locks, decide races), and a circuit breaker stops every request from
paying the Redis timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TypeVar

from wheelyard.shared.cache.base import Cache, Lock
from wheelyard.shared.cache.memory import MemoryCache, check_lock_args
from wheelyard.shared.errors import BackendUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Skipped:
    """Marker: the primary was not asked, or failed."""


_SKIPPED = _Skipped()


class DegradingCache:
    """Wraps `primary` so that `BackendUnavailable` from it degrades instead of propagating.

    While the primary fails: `get` returns None, `set` and `delete` do nothing, `incr` and
    `lock` use `fallback` (a fresh `MemoryCache` by default). Known cost: a `delete` skipped
    during an outage is lost, so a stale value may be served until its TTL once Redis returns.

    Circuit breaker: after `failure_threshold` consecutive failures the primary is not asked
    for `reset_after` seconds; then one call probes it, and its outcome closes or reopens the
    breaker. `degraded` is True from the first failure until a primary call succeeds; each
    change is logged once. `ping` always asks the primary and raises when it is down, so
    readiness checks report the outage. Other errors (LockTimeout, ValueError) pass through.
    """

    def __init__(
        self,
        primary: Cache,
        fallback: Cache | None = None,
        *,
        failure_threshold: int = 3,
        reset_after: float = 5.0,
    ) -> None:
        self._primary = primary
        self._fallback: Cache = fallback if fallback is not None else MemoryCache()
        self._failure_threshold = failure_threshold
        self._reset_after = reset_after
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False
        self.degraded = False

    async def get(self, key: str) -> bytes | None:
        """The primary's answer, or None (a miss) while it is unavailable."""
        value = await self._call(lambda: self._primary.get(key))
        return None if isinstance(value, _Skipped) else value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store in the primary; skipped while it is unavailable."""
        await self._call(lambda: self._primary.set(key, value, ttl=ttl))

    async def delete(self, key: str) -> None:
        """Delete from the primary; skipped while it is unavailable."""
        await self._call(lambda: self._primary.delete(key))

    async def set_max(self, key: str, value: int, *, ttl: float) -> int:
        """The primary's set-if-greater; while it is unavailable nothing is stored."""
        result = await self._call(lambda: self._primary.set_max(key, value, ttl=ttl))
        return value if isinstance(result, _Skipped) else result

    async def incr(self, key: str, *, ttl: float) -> int:
        """The primary's counter, or this process's own counter while it is unavailable."""
        value = await self._call(lambda: self._primary.incr(key, ttl=ttl))
        if isinstance(value, _Skipped):
            return await self._fallback.incr(key, ttl=ttl)
        return value

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[Lock]:
        """The primary's lock, or a per-process lock from the fallback while it is unavailable.

        The total wait stays within `wait` even when the primary fails part-way through it.
        """
        check_lock_args(ttl, wait)
        return self._hold(name, ttl, wait)

    @asynccontextmanager
    async def _hold(self, name: str, ttl: float, wait: float) -> AsyncIterator[Lock]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with AsyncExitStack() as stack:
            held = await self._call(
                lambda: stack.enter_async_context(self._primary.lock(name, ttl=ttl, wait=wait))
            )
            if isinstance(held, _Skipped):
                left = max(0.0, wait - (loop.time() - started))
                held = await stack.enter_async_context(
                    self._fallback.lock(name, ttl=ttl, wait=left)
                )
            yield held

    async def ping(self) -> None:
        """Ask the primary, whatever the breaker says; raise `BackendUnavailable` if it is down."""
        try:
            await self._primary.ping()
        except BackendUnavailable as exc:
            self._record_failure(exc)
            raise
        self._record_success()

    async def close(self) -> None:
        """Close the primary and the fallback."""
        try:
            await self._primary.close()
        finally:
            await self._fallback.close()

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T | _Skipped:
        if not self._admit():
            return _SKIPPED
        try:
            value = await operation()
        except BackendUnavailable as exc:
            self._record_failure(exc)
            return _SKIPPED
        except BaseException:
            # The primary answered (LockTimeout, ValueError) or we were cancelled: either way
            # this says nothing about its health, but a probe must not stay in flight forever.
            self._probing = False
            raise
        self._record_success()
        return value

    def _admit(self) -> bool:
        if self._open_until is None:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        # Half-open: let exactly one call through; the others keep using the fallback.
        self._probing = True
        return True

    def _record_failure(self, exc: BackendUnavailable) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._failure_threshold:
            self._open_until = time.monotonic() + self._reset_after
        self._probing = False
        if not self.degraded:
            self.degraded = True
            logger.warning(
                "cache degraded: %s; serving misses and per-process counters and locks",
                exc.message,
            )

    def _record_success(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False
        if self.degraded:
            self.degraded = False
            logger.warning("cache recovered: the primary answers again")
