"""Throttling password guesses without letting anyone lock anyone else out.

NIST SP 800-63B §5.2.2 ("Rate Limiting (Throttling)") asks to limit consecutive failed attempts
on one account to no more than 100, and names the techniques that keep an attacker from locking
the owner out: "requiring the claimant to wait following a failed attempt for a period of time
that increases as the account approaches its maximum allowance", and "accepting only
authentication requests that come from a white list of IP addresses from which the subscriber
has been successfully authenticated before". OWASP's Authentication Cheat Sheet ("Account
Lockout") warns that a lockout is itself a denial of service and prefers exponential backoff;
its device-cookie scheme (https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies)
exempts clients that signed in before. pip and uv keep no cookies, so the client address
stands in for the device:

- Failures are counted per (account, client address) pair. After PAIR_FREE_FAILURES the pair
  waits before its next attempt: 1 s, 2 s, 4 s ... up to MAX_DELAY, from its last failure.
  Only that address guessing that account waits: failures for one name never refuse another
  name, and failures from one address never refuse another user's right password.
- Failures are also counted per account, from every address together (a botnet guessing one
  password from many addresses). Past ACCOUNT_FREE_FAILURES the account's attempts wait the
  same growing delay, but only from addresses where the account has not signed in with its
  password during KNOWN_FOR: its owner, from where they usually work, is never held up by
  someone else's guesses, and from a new address they wait at most MAX_DELAY between tries
  (a backoff, never a lock). An account under sustained attack gets ACCOUNT_FREE_FAILURES,
  then about a dozen quickening waits, then one try per MAX_DELAY: under 100 guesses a day
  from every unknown address together, NIST's bound.
- API tokens and access JWTs are never throttled: a token secret has 256 bits of entropy and
  a JWT is signed, so guessing either is hopeless (NIST limits throttling to secrets that can
  be guessed), and throttling them would only let a guesser lock out a CI job.
- Counters live in the cache (shared by every gateway process with Redis) and are forgotten
  FAILURE_MEMORY after the first failure; the answer while waiting is 429 with Retry-After.
  A name that does not exist is counted exactly like one that does, so the 429 tells nothing
  about which names exist.

A request costs two cache reads (the pair's and the account's failure counts); the rest is
paid on failures only, and on the first success of a pair in a while (marking it known, which
a per-process memo keeps from repeating on every request).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from wheelyard.shared.cache import Cache
from wheelyard.shared.errors import RateLimited
from wheelyard.shared.memo import bytes_memo

PAIR_FREE_FAILURES = 5
ACCOUNT_FREE_FAILURES = 20
FIRST_DELAY = 1.0
MAX_DELAY = 1_800.0
FAILURE_MEMORY = 86_400.0
KNOWN_FOR = 30 * 86_400.0
#: How long this process trusts its own memory that a pair is marked known in the cache.
_MEMO_FOR = 3_600.0
_MAX_MEMO = 10_000  # keys are fixed-size digests: about 2 MiB at most


@dataclass(frozen=True)
class Attempt:
    """A password attempt admitted by `LoginThrottle.check`, to report back as failed or
    succeeded."""

    pair: str
    account: str
    pair_failures: int


class LoginThrottle:
    """Per (account, address) and per account backoff of password attempts; see the module
    docstring."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._known_memo: dict[str, float] = {}

    async def check(self, username: str, address: str | None) -> Attempt:
        """Admit an attempt to sign in as `username` from `address`, or raise RateLimited
        (with the seconds to wait) while the pair, or the account from an unknown address,
        is backing off."""
        account = _digest(username.lower())
        pair = _digest(f"{username.lower()}\0{client_bucket(address)}")
        now = time.time()
        pair_failures = await self._count(f"auth:fail:pair:{pair}")
        if pair_failures > PAIR_FREE_FAILURES:
            wait = await self._waiting(f"auth:wait:pair:{pair}", now)
            if wait:
                raise RateLimited(
                    "Too many failed sign-in attempts for this account from your address; "
                    f"try again in {wait} seconds.",
                    wait,
                )
        if await self._count(f"auth:fail:account:{account}") > ACCOUNT_FREE_FAILURES:
            wait = await self._waiting(f"auth:wait:account:{account}", now)
            if wait and not await self._known(pair):
                raise RateLimited(
                    "Too many failed sign-in attempts for this account; try again in "
                    f"{wait} seconds, from an address you signed in from before, or with an "
                    "API token.",
                    wait,
                )
        return Attempt(pair, account, pair_failures)

    async def failed(self, attempt: Attempt) -> None:
        """Count a wrong password; past the free failures, start (or lengthen) the wait."""
        now = time.time()
        for scope, key, free in (
            ("pair", attempt.pair, PAIR_FREE_FAILURES),
            ("account", attempt.account, ACCOUNT_FREE_FAILURES),
        ):
            failures = await self._cache.incr(f"auth:fail:{scope}:{key}", ttl=FAILURE_MEMORY)
            if failures > free:
                delay = backoff(failures - free)
                await self._cache.set(
                    f"auth:wait:{scope}:{key}", repr(now + delay).encode(), ttl=delay
                )

    async def succeeded(self, attempt: Attempt) -> None:
        """A right password: the pair starts afresh and its address is known for the account.
        (The account's own count stays: the owner signing in must not reset a botnet's.)"""
        if attempt.pair_failures:
            await self._cache.delete(f"auth:fail:pair:{attempt.pair}")
            await self._cache.delete(f"auth:wait:pair:{attempt.pair}")
        now = time.monotonic()
        if self._known_memo.get(attempt.pair, 0.0) > now:
            return
        await self._cache.set(f"auth:known:{attempt.pair}", b"1", ttl=KNOWN_FOR)
        if len(self._known_memo) >= _MAX_MEMO:
            self._known_memo.clear()
        self._known_memo[attempt.pair] = now + _MEMO_FOR

    async def _count(self, key: str) -> int:
        raw = await self._cache.get(key)
        return int(raw) if raw is not None else 0

    async def _waiting(self, key: str, now: float) -> int:
        raw = await self._cache.get(key)
        if raw is None:
            return 0
        left = float(raw) - now
        return math.ceil(left) if left > 0 else 0

    async def _known(self, pair: str) -> bool:
        return await self._cache.get(f"auth:known:{pair}") is not None


def backoff(excess: int) -> float:
    """Seconds to wait after the `excess`-th failure past the free ones: doubling from
    FIRST_DELAY, capped at MAX_DELAY."""
    return min(FIRST_DELAY * 2.0 ** min(excess - 1, 30), MAX_DELAY)


#: Client buckets remembered, at most this many bytes (an address is client input when it
#: comes from a trusted proxy's header).
BUCKETS_BYTES = 1024 * 1024


@bytes_memo(BUCKETS_BYTES)
def client_bucket(address: str | None) -> str:
    """The unit a client address is throttled by: the address itself, except that IPv6
    addresses count by their /64 (one host usually holds a whole /64, and would otherwise
    have 2**64 fresh addresses to guess from)."""
    if not address:
        return "-"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
