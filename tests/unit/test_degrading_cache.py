"""`DegradingCache`: a dead Redis costs speed, never requests (docs/architecture.md, "Stores")."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from wheelyard.shared.cache import Cache, DegradingCache, Lock, LockTimeout, RedisCache
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.errors import BackendUnavailable

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused


class FlakyPrimary:
    """A `Cache` that raises BackendUnavailable while `down`, and counts the calls it gets."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.inner = MemoryCache()
        self.down = True
        self.calls = 0
        self.delay = delay

    async def _answer(self) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise BackendUnavailable("fake primary is down", part="cache")

    async def get(self, key: str) -> bytes | None:
        await self._answer()
        return await self.inner.get(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self._answer()
        await self.inner.set(key, value, ttl=ttl)

    async def delete(self, key: str) -> None:
        await self._answer()
        await self.inner.delete(key)

    async def incr(self, key: str, *, ttl: float) -> int:
        await self._answer()
        return await self.inner.incr(key, ttl=ttl)

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[Lock]:
        @asynccontextmanager
        async def hold() -> AsyncIterator[Lock]:
            await self._answer()
            async with self.inner.lock(name, ttl=ttl, wait=wait) as held:
                yield held

        return hold()

    async def ping(self) -> None:
        await self._answer()

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def dead_redis() -> AsyncIterator[DegradingCache]:
    cache = DegradingCache(RedisCache(CLOSED_PORT_URL, socket_timeout=0.25))
    yield cache
    await cache.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts and never answers: a hung Redis, so every call times out."""
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    server.close()
    for writer in writers:
        writer.close()
    await server.wait_closed()


def test_degrading_cache_satisfies_the_protocol() -> None:
    assert isinstance(DegradingCache(MemoryCache()), Cache)


async def test_dead_redis_reads_miss_fast_and_writes_are_skipped(
    dead_redis: DegradingCache,
) -> None:
    started = time.monotonic()
    await dead_redis.set("k", b"v", ttl=10)
    assert await dead_redis.get("k") is None
    await dead_redis.delete("k")
    assert time.monotonic() - started < 0.5
    assert dead_redis.degraded is True


async def test_dead_redis_counters_work_in_process(dead_redis: DegradingCache) -> None:
    assert [await dead_redis.incr("hits", ttl=10) for _ in range(3)] == [1, 2, 3]
    results = await asyncio.gather(*(dead_redis.incr("burst", ttl=10) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))


async def test_dead_redis_locks_work_in_process(dead_redis: DegradingCache) -> None:
    count = 0
    holders = 0

    async def worker() -> None:
        nonlocal count, holders
        async with dead_redis.lock("L", ttl=5, wait=5):
            holders += 1
            assert holders == 1
            seen = count
            await asyncio.sleep(0.01)
            count = seen + 1
            holders -= 1

    await asyncio.gather(*(worker() for _ in range(5)))
    assert count == 5
    async with dead_redis.lock("busy", ttl=5, wait=0):
        with pytest.raises(LockTimeout):
            async with dead_redis.lock("busy", ttl=5, wait=0.1):
                pass


async def test_dead_redis_ping_raises(dead_redis: DegradingCache) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await dead_redis.ping()
    assert caught.value.part == "cache"
    assert "127.0.0.1:1" in caught.value.message
    # Even with the breaker open, readiness still asks Redis and still hears no.
    for _ in range(5):
        await dead_redis.get("k")
    with pytest.raises(BackendUnavailable):
        await dead_redis.ping()


async def test_raw_redis_cache_raises_backend_unavailable_not_redis_errors() -> None:
    cache = RedisCache(CLOSED_PORT_URL, socket_timeout=0.25)
    try:
        for call in (
            cache.get("k"),
            cache.set("k", b"v"),
            cache.delete("k"),
            cache.incr("k", ttl=1),
            cache.ping(),
        ):
            with pytest.raises(BackendUnavailable) as caught:
                await call
            assert caught.value.part == "cache"
        with pytest.raises(BackendUnavailable):
            async with cache.lock("L", ttl=1, wait=0):
                pass
    finally:
        await cache.close()


async def test_breaker_stops_paying_the_timeout_of_a_hung_redis(silent_server: str) -> None:
    cache = DegradingCache(
        RedisCache(silent_server, socket_timeout=0.2), failure_threshold=2, reset_after=30
    )
    try:
        slow = []
        for _ in range(2):
            started = time.monotonic()
            assert await cache.get("k") is None
            slow.append(time.monotonic() - started)
        assert all(0.15 <= s < 1.0 for s in slow), slow  # each paid the socket timeout

        started = time.monotonic()
        for _ in range(20):
            assert await cache.get("k") is None
            await cache.set("k", b"v")
            assert await cache.incr("n", ttl=10) >= 1
        assert time.monotonic() - started < 0.5  # breaker open: Redis is not asked (else 12 s)
        assert cache.degraded is True
    finally:
        await cache.close()


async def test_breaker_opens_after_threshold_and_probes_after_reset() -> None:
    primary = FlakyPrimary()
    cache = DegradingCache(primary, failure_threshold=3, reset_after=0.2)

    for _ in range(10):
        assert await cache.get("k") is None
    assert primary.calls == 3  # then the breaker opened

    primary.down = False
    await primary.inner.set("k", b"from-primary")
    assert await cache.get("k") is None  # still open: not asked yet
    assert primary.calls == 3
    assert cache.degraded is True

    await asyncio.sleep(0.25)
    assert await cache.get("k") == b"from-primary"  # the probe succeeded: closed again
    assert cache.degraded is False
    await cache.set("k2", b"v")
    assert await primary.inner.get("k2") == b"v"
    assert primary.calls == 5


async def test_failed_probe_reopens_the_breaker_at_once() -> None:
    primary = FlakyPrimary()
    cache = DegradingCache(primary, failure_threshold=2, reset_after=0.15)
    for _ in range(2):
        await cache.get("k")
    await asyncio.sleep(0.2)
    await cache.get("k")  # the probe: fails
    assert primary.calls == 3
    for _ in range(5):
        await cache.get("k")
    assert primary.calls == 3  # one failed probe was enough to reopen


async def test_only_one_probe_at_a_time() -> None:
    primary = FlakyPrimary(delay=0.1)
    cache = DegradingCache(primary, failure_threshold=1, reset_after=0.05)
    await cache.get("k")
    await asyncio.sleep(0.1)
    primary.down = False
    await asyncio.gather(*(cache.get("k") for _ in range(10)))
    assert primary.calls == 2  # the first failure and one probe; the rest missed
    assert cache.degraded is False


async def test_ping_success_closes_the_breaker() -> None:
    primary = FlakyPrimary()
    cache = DegradingCache(primary, failure_threshold=1, reset_after=60)
    await cache.get("k")
    primary.down = False
    await cache.ping()
    assert cache.degraded is False
    await cache.set("k", b"v")
    assert await cache.get("k") == b"v"


async def test_counters_and_locks_fall_back_and_return() -> None:
    primary = FlakyPrimary()
    cache = DegradingCache(primary, failure_threshold=1, reset_after=0.1)
    assert await cache.incr("n", ttl=10) == 1  # fallback counter
    async with cache.lock("L", ttl=5, wait=0) as held:
        assert held.token
    primary.down = False
    await asyncio.sleep(0.15)
    assert await cache.incr("n", ttl=10) == 1  # the primary's own counter, fresh
    assert await primary.inner.get("n") == b"1"
    async with cache.lock("L", ttl=5, wait=0):
        with pytest.raises(LockTimeout):  # held in the primary, so the primary says no
            async with primary.inner.lock("L", ttl=5, wait=0):
                pass


async def test_lock_timeout_from_the_primary_is_not_a_failure() -> None:
    primary = FlakyPrimary()
    primary.down = False
    cache = DegradingCache(primary, failure_threshold=1, reset_after=60)
    async with primary.inner.lock("L", ttl=5, wait=0):
        with pytest.raises(LockTimeout):
            async with cache.lock("L", ttl=5, wait=0.05):
                pass
    assert cache.degraded is False
    await cache.set("k", b"v")
    assert await primary.inner.get("k") == b"v"


async def test_degradation_and_recovery_are_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary = FlakyPrimary()
    cache = DegradingCache(primary, failure_threshold=1, reset_after=0.05)
    with caplog.at_level(logging.WARNING, logger="wheelyard.shared.cache.degrading"):
        for _ in range(5):
            await cache.get("k")
        await asyncio.sleep(0.1)
        await cache.get("k")  # failed probe: still degraded, no new message
        primary.down = False
        await asyncio.sleep(0.1)
        await cache.get("k")
        await cache.get("k")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "degraded" in messages[0]
    assert "fake primary is down" in messages[0]
    assert "recovered" in messages[1]
