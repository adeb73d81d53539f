"""Circuit breakers for upstreams: while an upstream is down, requests fail (or are served
stale) at once instead of each waiting for the full timeout."""

from __future__ import annotations

import time

#: Consecutive failures that open an upstream's circuit, and how long it stays open.
BREAKER_FAILURES = 3
BREAKER_OPEN_SECONDS = 30.0


class CircuitBreaker:
    """Per-key consecutive-failure breaker: after `failures` failures in a row the circuit is
    open for `open_seconds` (requests are refused at once); then one probe is let through,
    whose outcome closes or re-opens it. In-process state: every replica learns on its own."""

    def __init__(
        self, failures: int = BREAKER_FAILURES, open_seconds: float = BREAKER_OPEN_SECONDS
    ) -> None:
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

    def failures_of(self, key: object) -> int:
        """Consecutive failures of `key` so far (0 after a success)."""
        return self._count.get(key, 0)

    def open_until(self, key: object) -> float | None:
        """When the circuit of `key` half-opens, in epoch seconds; None when it is closed."""
        until = self._open_until.get(key)
        return None if until is None else time.time() + (until - time.monotonic())

    def success(self, key: object) -> None:
        """The upstream answered (any definite answer, 404 included)."""
        self._count.pop(key, None)
        self._open_until.pop(key, None)
        self._probing.discard(key)

    def failure(self, key: object) -> None:
        """The upstream failed (timeout, connection error, 5xx, garbage)."""
        count = self._count.get(key, 0) + 1
        self._count[key] = count
        self._probing.discard(key)
        if count >= self.failures:
            self._open_until[key] = time.monotonic() + self.open_seconds
