"""Circuit breakers for upstreams: while an upstream is down, requests fail (or are served
stale) at once instead of each waiting for the full timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: Consecutive failures that open an upstream's circuit, and how long it stays open.
BREAKER_FAILURES = 3
BREAKER_OPEN_SECONDS = 30.0


@dataclass(frozen=True)
class BreakerChange:
    """What an `on_change` hook is told about one key: its consecutive `failures` (0: it
    answered again after failing), whether its circuit is open and for how many more seconds
    (`open_for`), and the cause of the failure that caused the change."""

    failures: int
    is_open: bool
    open_for: float | None = None
    error: str | None = None


class CircuitBreaker:
    """Per-key consecutive-failure breaker: after `failures` failures in a row the circuit is
    open for `open_seconds` (requests are refused at once); then one probe is let through,
    whose outcome closes or re-opens it. In-process state: every replica learns on its own."""

    def __init__(
        self,
        failures: int = BREAKER_FAILURES,
        open_seconds: float = BREAKER_OPEN_SECONDS,
        *,
        on_change: Callable[[object, BreakerChange], None] | None = None,
    ) -> None:
        """`on_change(key, change)` is told of every failure and of the first success after
        failures (not of the successes of a healthy upstream: they change nothing)."""
        self.on_change = on_change
        self.failures = failures
        self.open_seconds = open_seconds
        self._count: dict[object, int] = {}
        self._open_until: dict[object, float] = {}
        self._probing: set[object] = set()

    def allow(self, key: object) -> bool:
        """May a request go to the upstream `key` now? (Takes the probe slot when half-open.)"""
        until = self._open_until.get(key)
        if until is None:
            return True
        if time.monotonic() < until or key in self._probing:
            return False
        self._probing.add(key)
        return True

    def is_open(self, key: object) -> bool:
        """True while requests to `key` are refused without trying."""
        until = self._open_until.get(key)
        return until is not None and (time.monotonic() < until or key in self._probing)

    def success(self, key: object) -> None:
        """The upstream answered (any definite answer, 404 included)."""
        failed = self._count.pop(key, 0)
        was_open = self._open_until.pop(key, None) is not None
        self._probing.discard(key)
        if (failed or was_open) and self.on_change is not None:
            self.on_change(key, BreakerChange(failures=0, is_open=False))

    def failure(self, key: object, error: str | None = None) -> None:
        """The upstream failed (timeout, connection error, 5xx, garbage); `error` says how."""
        count = self._count.get(key, 0) + 1
        self._count[key] = count
        self._probing.discard(key)
        open_for = None
        if count >= self.failures:
            self._open_until[key] = time.monotonic() + self.open_seconds
            open_for = self.open_seconds
        if self.on_change is not None:
            change = BreakerChange(count, open_for is not None, open_for, error)
            self.on_change(key, change)
