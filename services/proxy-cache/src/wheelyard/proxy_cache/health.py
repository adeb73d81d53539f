"""Where the changes of upstream circuit breakers go: the `wheelyard_upstream_breaker_open`
gauge, and the health record the web interface shows (`wheelyard.shared.domain.upstream_health`).

One hook for both, so the metric and the page never disagree about an upstream. The breaker is
synchronous and tells its hook in the middle of a fetch: the gauge is set there and then, and
the health record, which lives in the (asynchronous) cache, is queued and written by `publish`,
which `ProxyPages` awaits after every round of upstream requests (`ProxyService` gives the same
`BreakerReports` to the client's breaker and to its pages). Only changes are written (a
failure, the first success after failures): the healthy path costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from wheelyard.proxy_cache.breaker import BreakerChange
from wheelyard.shared.cache import Cache
from wheelyard.shared.domain import upstream_health
from wheelyard.shared.domain.upstream_health import UpstreamHealth
from wheelyard.shared.metrics import UPSTREAM_BREAKER_OPEN


@dataclass(frozen=True)
class Circuit:
    """One upstream of one proxy repository, as the breaker keys it: ids for the health
    record, names for the metric's labels (`upstream` is `upstream.circuit_label`)."""

    repository_id: int
    index: int
    repository: str
    upstream: str


class BreakerReports:
    """The `on_change` hook of the upstream breaker (see the module docstring)."""

    def __init__(self) -> None:
        self._pending: dict[Circuit, UpstreamHealth] = {}

    def __call__(self, key: object, change: BreakerChange) -> None:
        assert isinstance(key, Circuit)
        UPSTREAM_BREAKER_OPEN.labels(key.repository, key.upstream).set(int(change.is_open))
        now = time.time()
        if change.failures:
            health = UpstreamHealth(
                failures=change.failures,
                open_until=None if change.open_for is None else now + change.open_for,
                last_error=change.error,
                last_failure_at=now,
            )
        else:
            health = UpstreamHealth(recovered_at=now)
        self._pending[key] = health  # only the newest state of each upstream is worth writing

    async def publish(self, cache: Cache) -> None:
        """Write the queued health records to the cache (shared by every process)."""
        while self._pending:
            key = next(iter(self._pending))
            health = self._pending.pop(key)
            await upstream_health.report(cache, key.repository_id, key.index, health)
