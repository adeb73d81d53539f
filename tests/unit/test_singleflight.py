"""`SingleFlight`: one run per key at a time, its outcome shared, cancellation of a waiter
harmless, a finished run forgotten, and the run's `state` visible to joiners."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from wheelyard.shared.concurrency import SingleFlight


class Work:
    """A piece of work that counts its runs and finishes when `release()`d."""

    def __init__(self, result: object = "done", error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.runs = 0
        self.finished = 0
        self.gate = asyncio.Event()

    async def __call__(self) -> object:
        self.runs += 1
        await self.gate.wait()
        self.finished += 1
        if self.error is not None:
            raise self.error
        return self.result

    def release(self) -> None:
        self.gate.set()


async def settle() -> None:
    """Let every ready task take its steps."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_callers_of_one_key_share_one_run() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(result=object())

    waiters = [asyncio.create_task(flight.run("k", work)) for _ in range(5)]
    await settle()
    assert work.runs == 1 and flight.running("k")
    work.release()
    results = await asyncio.gather(*waiters)

    assert work.runs == 1
    assert all(result is work.result for result in results)


async def test_different_keys_run_separately() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    a, b = Work("a"), Work("b")

    task_a = asyncio.create_task(flight.run("a", a))
    task_b = asyncio.create_task(flight.run("b", b))
    await settle()
    assert (a.runs, b.runs) == (1, 1)
    assert set(flight.tasks()) == {flight.start("a", a), flight.start("b", b)}
    a.release()
    b.release()

    assert await asyncio.gather(task_a, task_b) == ["a", "b"]


async def test_start_returns_the_run_under_way() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work, other = Work(), Work()

    first = flight.start("k", work)
    second = flight.start("k", other)

    assert first is second
    work.release()
    assert await first == "done"
    assert other.runs == 0


async def test_an_exception_reaches_every_waiter() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    error = RuntimeError("upstream down")
    work = Work(error=error)

    waiters = [asyncio.create_task(flight.run("k", work)) for _ in range(3)]
    await settle()
    work.release()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)

    assert work.runs == 1
    assert all(outcome is error for outcome in outcomes)


async def test_a_failed_run_nobody_awaited_is_not_reported_as_never_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(error=RuntimeError("nobody listens"))
    flight.start("k", work)  # the task is not kept: only SingleFlight saw it
    work.release()
    await settle()
    assert not flight.running("k")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
        await settle()

    assert "never retrieved" not in caplog.text


async def test_a_cancelled_waiter_does_not_cancel_the_run() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    leaving = asyncio.create_task(flight.run("k", work))
    staying = asyncio.create_task(flight.run("k", work))
    await settle()

    leaving.cancel()
    await settle()
    assert leaving.cancelled()
    assert flight.running("k")
    work.release()

    assert await staying == "done"
    assert work.finished == 1


async def test_the_run_goes_on_when_its_only_waiter_is_cancelled() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    waiter = asyncio.create_task(flight.run("k", work))
    await settle()
    (run,) = flight.tasks()

    waiter.cancel()
    await settle()
    assert not run.done()
    work.release()

    assert await run == "done"
    # A later caller while nothing runs starts afresh.
    again = Work("again")
    again.release()
    assert await flight.run("k", again) == "again"


async def test_a_run_is_forgotten_when_done() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    first = Work("first")
    first.release()

    assert await flight.run("k", first) == "first"

    assert not flight.running("k")
    assert flight.tasks() == []
    second = Work("second")
    second.release()
    assert await flight.run("k", second) == "second"
    assert (first.runs, second.runs) == (1, 1)


async def test_a_failed_run_is_forgotten_too() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    failing = Work(error=ValueError("bad"))
    failing.release()

    with pytest.raises(ValueError, match="bad"):
        await flight.run("k", failing)

    assert not flight.running("k")
    working = Work("ok")
    working.release()
    assert await flight.run("k", working) == "ok"


async def test_state_is_the_runs_while_it_is_under_way() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    spool = object()
    assert flight.state("k") is None

    run = flight.start("k", work, state=spool)
    joined = flight.start("k", Work(), state=object())  # a joiner's state is not used

    assert joined is run
    assert flight.state("k") is spool
    assert flight.state("other") is None
    work.release()
    await run
    await settle()
    assert flight.state("k") is None
