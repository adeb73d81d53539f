"""`CircuitBreaker`: opens after N failures in a row, refuses while open, lets one probe through
when the open time is over, and the probe's outcome closes or re-opens it.

Time is the breaker's `time.monotonic`, replaced by a clock the test moves: nothing sleeps.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from wheelyard.proxy_cache import breaker as breaker_module
from wheelyard.proxy_cache.breaker import (
    BREAKER_FAILURES,
    BREAKER_OPEN_SECONDS,
    BreakerChange,
    CircuitBreaker,
)

KEY = ("repo", 0)


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(breaker_module, "time", SimpleNamespace(monotonic=clock))
    return clock


def opened(failures: int = 3, open_seconds: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures=failures, open_seconds=open_seconds)
    for _ in range(failures):
        breaker.failure(KEY)
    return breaker


def test_defaults() -> None:
    breaker = CircuitBreaker()
    assert (breaker.failures, breaker.open_seconds) == (BREAKER_FAILURES, BREAKER_OPEN_SECONDS)


def test_a_closed_circuit_allows_and_stays_closed_below_the_threshold(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=3, open_seconds=30)
    assert breaker.allow(KEY) and not breaker.is_open(KEY)

    breaker.failure(KEY)
    breaker.failure(KEY)

    assert breaker.allow(KEY) and breaker.allow(KEY)
    assert not breaker.is_open(KEY)


def test_it_opens_after_n_failures_in_a_row_and_refuses_while_open(clock: Clock) -> None:
    breaker = opened(failures=3, open_seconds=30)

    assert breaker.is_open(KEY)
    for _ in range(5):
        assert not breaker.allow(KEY)
    clock.advance(29.9)
    assert not breaker.allow(KEY) and breaker.is_open(KEY)


def test_a_success_resets_the_count_of_failures(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=3, open_seconds=30)
    breaker.failure(KEY)
    breaker.failure(KEY)
    breaker.success(KEY)
    breaker.failure(KEY)
    breaker.failure(KEY)

    assert breaker.allow(KEY) and not breaker.is_open(KEY)
    breaker.failure(KEY)
    assert not breaker.allow(KEY)


def test_after_the_open_time_exactly_one_probe_goes_through(clock: Clock) -> None:
    breaker = opened(open_seconds=30)
    clock.advance(30)

    assert breaker.allow(KEY)  # the probe
    assert not breaker.allow(KEY)  # everyone else waits for its outcome
    assert not breaker.allow(KEY)
    assert breaker.is_open(KEY)
    clock.advance(300)  # however long the probe takes
    assert not breaker.allow(KEY)


def test_a_successful_probe_closes_the_circuit(clock: Clock) -> None:
    breaker = opened(failures=3, open_seconds=30)
    clock.advance(30)
    assert breaker.allow(KEY)

    breaker.success(KEY)

    assert not breaker.is_open(KEY)
    assert all(breaker.allow(KEY) for _ in range(5))
    # Closed for good: the count starts again from zero.
    breaker.failure(KEY)
    breaker.failure(KEY)
    assert breaker.allow(KEY)


def test_a_failed_probe_reopens_the_circuit_for_another_open_time(clock: Clock) -> None:
    breaker = opened(failures=3, open_seconds=30)
    clock.advance(30)
    assert breaker.allow(KEY)

    breaker.failure(KEY)

    assert breaker.is_open(KEY)
    assert not breaker.allow(KEY)
    clock.advance(29.9)
    assert not breaker.allow(KEY)
    clock.advance(0.1)
    assert breaker.allow(KEY)  # the next probe
    assert not breaker.allow(KEY)


def test_circuits_are_per_key(clock: Clock) -> None:
    breaker = opened(failures=3)
    other = ("repo", 1)

    assert not breaker.allow(KEY)
    assert breaker.allow(other) and not breaker.is_open(other)
    breaker.success(other)
    assert not breaker.allow(KEY)


def test_the_hook_is_told_every_failure_and_the_first_success_after_them(clock: Clock) -> None:
    told: list[tuple[object, BreakerChange]] = []
    breaker = CircuitBreaker(
        failures=2, open_seconds=30, on_change=lambda key, change: told.append((key, change))
    )

    breaker.success(KEY)  # a healthy upstream's answers change nothing
    breaker.failure(KEY, "the upstream answered 500")
    breaker.failure(KEY, "timed out")
    breaker.success(KEY)
    breaker.success(KEY)

    assert told == [
        (KEY, BreakerChange(1, False, None, "the upstream answered 500")),
        (KEY, BreakerChange(2, True, 30, "timed out")),
        (KEY, BreakerChange(0, False)),
    ]
