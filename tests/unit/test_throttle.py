"""The login throttle's rules, on the memory cache (tests/integration/test_auth_throttle.py
drives them through a real server)."""

from __future__ import annotations

import pytest

from wheelyard.shared.auth.throttle import (
    ACCOUNT_FREE_FAILURES,
    MAX_DELAY,
    PAIR_FREE_FAILURES,
    LoginThrottle,
    backoff,
    client_bucket,
)
from wheelyard.shared.cache import MemoryCache
from wheelyard.shared.errors import RateLimited


def test_the_wait_doubles_and_is_capped() -> None:
    assert [backoff(k) for k in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(12) == MAX_DELAY
    assert backoff(10_000) == MAX_DELAY


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        (None, "-"),
        ("unix-socket", "unix-socket"),
    ],
)
def test_clients_are_counted_by_address_and_ipv6_by_its_64(
    address: str | None, bucket: str
) -> None:
    assert client_bucket(address) == bucket


async def _fail(throttle: LoginThrottle, user: str, address: str, times: int) -> None:
    for _ in range(times):
        await throttle.failed(await throttle.check(user, address))


async def test_a_pair_waits_after_its_free_failures_and_nobody_else_does() -> None:
    throttle = LoginThrottle(MemoryCache())
    await _fail(throttle, "alice", "192.0.2.1", PAIR_FREE_FAILURES)
    await throttle.check("alice", "192.0.2.1")  # still free
    await _fail(throttle, "alice", "192.0.2.1", 1)

    with pytest.raises(RateLimited) as waited:
        await throttle.check("Alice", "192.0.2.1")  # names are counted case-blind
    assert waited.value.retry_after == 1
    await throttle.check("alice", "192.0.2.2")
    await throttle.check("bob", "192.0.2.1")


async def test_an_account_under_distributed_guessing_waits_only_from_unknown_addresses() -> None:
    throttle = LoginThrottle(MemoryCache())
    await throttle.succeeded(await throttle.check("alice", "192.0.2.1"))
    for i in range(ACCOUNT_FREE_FAILURES + 1):
        await _fail(throttle, "alice", f"198.51.100.{i + 1}", 1)

    await throttle.check("alice", "192.0.2.1")  # known: signed in from here before
    with pytest.raises(RateLimited):
        await throttle.check("alice", "203.0.113.9")
    await throttle.check("bob", "203.0.113.9")


async def test_success_starts_the_pair_afresh() -> None:
    throttle = LoginThrottle(MemoryCache())
    await _fail(throttle, "alice", "192.0.2.1", PAIR_FREE_FAILURES)
    await throttle.succeeded(await throttle.check("alice", "192.0.2.1"))

    attempt = await throttle.check("alice", "192.0.2.1")

    assert attempt.pair_failures == 0
