"""`BreakerReports`, the one hook of the upstream breaker: each change sets the open-circuit
gauge at once and, once published, the health record the web interface reads (issue 11, the
proxy repository page's upstream state)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from wheelyard.proxy_cache import health as health_module
from wheelyard.proxy_cache.breaker import BreakerChange
from wheelyard.proxy_cache.health import BreakerReports, Circuit
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.domain.upstream_health import health_of

NOW = 1_800_000_000.0
CIRCUIT = Circuit(repository_id=7, index=1, repository="default/mirror", upstream="1:up.invalid")


def _gauge() -> float | None:
    return REGISTRY.get_sample_value(
        "wheelyard_upstream_breaker_open",
        {"repository": "default/mirror", "upstream": "1:up.invalid"},
    )


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "time", SimpleNamespace(time=lambda: NOW))


async def test_a_change_sets_the_gauge_at_once_and_the_record_when_published() -> None:
    cache = MemoryCache()
    reports = BreakerReports()

    reports(CIRCUIT, BreakerChange(3, True, 30.0, "the upstream answered 500"))

    assert _gauge() == 1
    assert (await health_of(cache, 7, 2))[1].state(NOW) == "ok"  # not yet written
    await reports.publish(cache)
    default, failing = await health_of(cache, 7, 2)
    assert default.state(NOW) == "ok"
    assert failing.state(NOW) == "open" and failing.state(NOW + 31) == "failing"
    assert (failing.failures, failing.last_error) == (3, "the upstream answered 500")
    assert (failing.open_until, failing.last_failure_at) == (NOW + 30, NOW)


async def test_recovery_closes_the_gauge_and_only_the_newest_state_is_written() -> None:
    cache = MemoryCache()
    reports = BreakerReports()
    reports(CIRCUIT, BreakerChange(1, False, None, "timed out"))
    reports(CIRCUIT, BreakerChange(0, False))

    await reports.publish(cache)
    await reports.publish(cache)  # nothing left to write

    assert _gauge() == 0
    (_, recovered) = await health_of(cache, 7, 2)
    assert recovered.state(NOW) == "ok" and recovered.recovered_at == NOW
    assert recovered.failures == 0 and recovered.last_error is None
