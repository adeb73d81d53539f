"""The Cache + Lock contract, run against every backend through the `cache` fixture."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

import pytest

from wheelyard.shared.cache import Cache, LockTimeout

SHORT = 0.2  # a TTL short enough to wait out, long enough to read back before it passes


def unique(stem: str) -> str:
    return f"{stem}-{uuid4().hex[:8]}"


# -- key/value ------------------------------------------------------------------------------


async def test_get_missing_is_none(cache: Cache) -> None:
    assert await cache.get(unique("missing")) is None


async def test_set_then_get_then_delete(cache: Cache) -> None:
    await cache.set("k", b"one")
    assert await cache.get("k") == b"one"
    await cache.set("k", b"two")
    assert await cache.get("k") == b"two"
    await cache.delete("k")
    assert await cache.get("k") is None


async def test_delete_missing_key_is_not_an_error(cache: Cache) -> None:
    await cache.delete(unique("never-set"))


async def test_value_expires_after_ttl(cache: Cache) -> None:
    await cache.set("short", b"v", ttl=SHORT)
    assert await cache.get("short") == b"v"
    await asyncio.sleep(SHORT + 0.1)
    assert await cache.get("short") is None


async def test_set_without_ttl_persists_and_clears_an_old_ttl(cache: Cache) -> None:
    await cache.set("forever", b"v")
    await cache.set("was-short", b"old", ttl=SHORT)
    await cache.set("was-short", b"new")
    await asyncio.sleep(SHORT + 0.1)
    assert await cache.get("forever") == b"v"
    assert await cache.get("was-short") == b"new"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("with space", id="space"),
        pytest.param("new\nline", id="newline"),
        pytest.param("tab\tand\r\ncrlf", id="tab-crlf"),
        pytest.param("glob*?[chars]", id="glob"),
        pytest.param("slashes/and:colons", id="slash-colon"),
        pytest.param("ünïcödé-名前-🐍", id="unicode"),
        pytest.param("quote'\"backslash\\", id="quotes"),
        pytest.param("", id="empty"),
        pytest.param("x" * 1000, id="long"),
    ],
)
async def test_odd_keys_round_trip_and_stay_distinct(cache: Cache, key: str) -> None:
    await cache.set(key, b"odd")
    await cache.set(key + "-other", b"other")
    assert await cache.get(key) == b"odd"
    await cache.delete(key)
    assert await cache.get(key) is None
    assert await cache.get(key + "-other") == b"other"


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00", bytes(range(256)), b"\xff\xfe\x00\r\n" * 1000, bytes(1024 * 1024)],
    ids=["empty", "nul", "all-bytes", "crlf-nul", "one-mib"],
)
async def test_binary_values_round_trip_exactly(cache: Cache, value: bytes) -> None:
    await cache.set("bin", value)
    assert await cache.get("bin") == value


async def test_non_positive_ttl_is_rejected(cache: Cache) -> None:
    for ttl in (0, -1.0):
        with pytest.raises(ValueError):
            await cache.set("k", b"v", ttl=ttl)
        with pytest.raises(ValueError):
            await cache.incr("n", ttl=ttl)


# -- counters -------------------------------------------------------------------------------


async def test_incr_counts_from_one_and_reads_back_as_ascii(cache: Cache) -> None:
    assert await cache.incr("n", ttl=10) == 1
    assert await cache.incr("n", ttl=10) == 2
    assert await cache.get("n") == b"2"


async def test_incr_is_atomic_under_concurrency(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.incr("hits", ttl=10) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await cache.get("hits") == b"50"


async def test_incr_ttl_is_set_at_creation_and_not_extended(cache: Cache) -> None:
    assert await cache.incr("window", ttl=0.3) == 1
    await asyncio.sleep(0.15)
    assert await cache.incr("window", ttl=10) == 2  # a later, longer ttl must not apply
    await asyncio.sleep(0.25)
    assert await cache.get("window") is None
    assert await cache.incr("window", ttl=10) == 1  # expired, so a new counter


# -- locks ----------------------------------------------------------------------------------


async def test_lock_gives_an_owner_token(cache: Cache) -> None:
    async with cache.lock("L", ttl=5, wait=1) as first:
        assert first.name == "L"
        token = first.token
    async with cache.lock("L", ttl=5, wait=1) as second:
        assert second.token and second.token != token


async def test_lock_is_mutually_exclusive_under_contention(cache: Cache) -> None:
    count = 0
    holders = 0
    most_holders = 0

    async def worker() -> None:
        nonlocal count, holders, most_holders
        async with cache.lock("shared", ttl=5, wait=10):
            holders += 1
            most_holders = max(most_holders, holders)
            seen = count
            await asyncio.sleep(0.01)  # yield inside the critical section: races would show
            count = seen + 1
            holders -= 1

    await asyncio.gather(*(worker() for _ in range(10)))
    assert count == 10
    assert most_holders == 1


async def test_lock_is_released_after_the_block_even_on_error(cache: Cache) -> None:
    with pytest.raises(RuntimeError):
        async with cache.lock("L", ttl=5, wait=0):
            raise RuntimeError("boom")
    async with cache.lock("L", ttl=5, wait=0):
        pass


async def test_lock_wait_is_bounded(cache: Cache) -> None:
    async with cache.lock("busy", ttl=5, wait=0):
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            async with cache.lock("busy", ttl=5, wait=0.3):
                pytest.fail("acquired a lock that is held")
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.0


async def test_lock_with_zero_wait_tries_once(cache: Cache) -> None:
    async with cache.lock("busy", ttl=5, wait=0):
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            async with cache.lock("busy", ttl=5, wait=0):
                pass
        assert time.monotonic() - started < 0.2


async def test_lock_waiter_gets_it_soon_after_release(cache: Cache) -> None:
    released_at = 0.0

    async def holder() -> None:
        nonlocal released_at
        async with cache.lock("handoff", ttl=5, wait=0):
            await asyncio.sleep(0.2)
        released_at = time.monotonic()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    async with cache.lock("handoff", ttl=5, wait=2):
        acquired_at = time.monotonic()
    await task
    assert acquired_at - released_at < 0.5  # woken soon, not left waiting for the 5 s ttl


async def test_lock_expires_when_the_holder_never_releases(cache: Cache) -> None:
    dead = cache.lock("L", ttl=0.3, wait=0)
    first = await dead.__aenter__()  # a holder that dies: never exits the block
    started = time.monotonic()
    try:
        async with cache.lock("L", ttl=5, wait=2) as second:
            assert 0.2 <= time.monotonic() - started < 1.5
            assert second.token != first.token
            # The late holder can neither release nor extend the new holder's lock...
            assert await first.release() is False
            assert await first.extend(5) is False
            # ...so it is still held by `second`.
            with pytest.raises(LockTimeout):
                async with cache.lock("L", ttl=5, wait=0):
                    pass
            assert await second.release() is True
    finally:
        await dead.__aexit__(None, None, None)  # finish the context before the cache closes


async def test_release_after_expiry_returns_false(cache: Cache) -> None:
    async with cache.lock("L", ttl=SHORT, wait=0) as held:
        await asyncio.sleep(SHORT + 0.1)
        assert await held.release() is False
        assert await held.extend(5) is False


async def test_release_twice_returns_true_then_false(cache: Cache) -> None:
    async with cache.lock("L", ttl=5, wait=0) as held:
        assert await held.release() is True
        assert await held.release() is False
        async with cache.lock("L", ttl=5, wait=0):  # released early, so free again
            pass


async def test_extend_keeps_the_lock_past_its_first_ttl(cache: Cache) -> None:
    async with cache.lock("L", ttl=0.3, wait=0) as held:
        assert await held.extend(2) is True
        await asyncio.sleep(0.5)
        with pytest.raises(LockTimeout):
            async with cache.lock("L", ttl=5, wait=0):
                pass
        assert await held.release() is True
    async with cache.lock("L", ttl=5, wait=0):
        pass


async def test_locks_and_keys_do_not_collide(cache: Cache) -> None:
    await cache.set("same", b"value")
    async with cache.lock("same", ttl=5, wait=0):
        assert await cache.get("same") == b"value"
        await cache.delete("same")
        with pytest.raises(LockTimeout):
            async with cache.lock("same", ttl=5, wait=0):
                pass


async def test_distinct_lock_names_are_independent(cache: Cache) -> None:
    async with cache.lock("a", ttl=5, wait=0), cache.lock("b", ttl=5, wait=0):
        pass


async def test_bad_lock_arguments_are_rejected(cache: Cache) -> None:
    with pytest.raises(ValueError):
        cache.lock("L", ttl=0, wait=1)
    with pytest.raises(ValueError):
        cache.lock("L", ttl=1, wait=-1)


async def test_ping_answers(cache: Cache) -> None:
    await cache.ping()


async def test_set_max_never_moves_a_serial_backwards(cache: Cache) -> None:
    key = f"serial-{uuid4().hex}"
    assert await cache.set_max(key, 5, ttl=10) == 5
    assert await cache.set_max(key, 3, ttl=10) == 5
    assert await cache.get(key) == b"5"
    assert await cache.set_max(key, 9, ttl=10) == 9
    results = await asyncio.gather(*(cache.set_max(key, n, ttl=10) for n in range(20)))
    assert max(results) == 19 and await cache.get(key) == b"19"


async def test_set_max_expires(cache: Cache) -> None:
    key = f"serial-{uuid4().hex}"
    await cache.set_max(key, 7, ttl=SHORT)
    await asyncio.sleep(SHORT * 2)
    assert await cache.get(key) is None
    assert await cache.set_max(key, 1, ttl=10) == 1
