"""The health of proxy upstreams, as the proxy-cache last saw it: shared through the cache.

Each proxy-cache process keeps its own circuit breakers (in memory, per upstream); when one
changes (a failure, the first success after failures) the process reports it here, so the web
interface, which runs in the gateway, can show whether an upstream is failing and since when.
With several replicas the last report wins. The cache is never the truth: a lost report shows
as "no failure reported".
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from wheelyard.shared.cache import Cache

#: How long a report is kept (a failing upstream reports again on its next failure).
HEALTH_TTL = 7 * 24 * 3600.0


@dataclass(frozen=True)
class UpstreamHealth:
    """One upstream's breaker: consecutive `failures`, the circuit open (requests refused
    without asking) until `open_until`, the last error and when things last went wrong or
    right again (times in epoch seconds)."""

    failures: int = 0
    open_until: float | None = None
    last_error: str | None = None
    last_failure_at: float | None = None
    recovered_at: float | None = None

    def state(self, now: float | None = None) -> str:
        """`open` (refused without trying), `failing` (errors, still tried) or `ok`."""
        now = time.time() if now is None else now
        if self.open_until is not None and now < self.open_until:
            return "open"
        return "failing" if self.failures else "ok"


def health_key(repository_id: int, index: int) -> str:
    """The cache key of upstream number `index` of a proxy repository."""
    return f"upstream:health:{repository_id}:{index}"


async def report(cache: Cache, repository_id: int, index: int, health: UpstreamHealth) -> None:
    """Publish the state of one upstream's breaker."""
    raw = json.dumps(asdict(health)).encode()
    await cache.set(health_key(repository_id, index), raw, ttl=HEALTH_TTL)


async def health_of(cache: Cache, repository_id: int, count: int) -> list[UpstreamHealth]:
    """The last reported state of each of a proxy repository's `count` upstreams (a healthy
    default where nothing was reported)."""
    out = []
    for index in range(count):
        raw = await cache.get(health_key(repository_id, index))
        try:
            out.append(UpstreamHealth(**json.loads(raw)) if raw else UpstreamHealth())
        except (ValueError, TypeError):
            out.append(UpstreamHealth())
    return out
