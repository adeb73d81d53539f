"""The cache on Redis (redis-py's asyncio client): shared by every process that uses the same URL.

Every Redis failure (refused, timed out, read-only replica, out of memory...) surfaces as
`BackendUnavailable(part="cache")`, never as a redis-py exception, so callers (above all
`DegradingCache`) have one thing to catch. Timeouts are short so a dead Redis fails fast.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from typing import cast
from urllib.parse import urlsplit
from uuid import uuid4

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from wheelyard.shared.cache.base import Lock, LockTimeout
from wheelyard.shared.cache.memory import check_lock_args, check_ttl
from wheelyard.shared.errors import BackendUnavailable

# INCR and PEXPIRE in one script so a counter can never be left without its TTL (a crash
# between two separate commands would make a rate-limit counter immortal). EXISTS rather than
# "INCR returned 1" so a counter someone set to 0 is not mistaken for a new one.
_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCR', KEYS[1])
if created then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return value
"""
# Set-if-greater: a serial must never move backwards, whoever writes last.
_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]))
local value = tonumber(ARGV[1])
if current and current >= value then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return value
"""
# Compare-and-delete / compare-and-pexpire: only the token's owner may touch the lock.
# https://redis.io/docs/latest/develop/use/patterns/distributed-locks/
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Lock polling: start short (locks here guard sub-second work), back off to a ceiling.
_POLL_FIRST = 0.01
_POLL_MAX = 0.1


def _ms(seconds: float) -> int:
    # Round up so a tiny positive TTL never becomes 0 ms (which Redis rejects).
    return max(1, math.ceil(seconds * 1000))


def describe_url(url: str) -> str:
    """`url` without user, password and query, safe to put in logs and error messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed port: say so rather than fail while reporting an error
        port = ":?"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisLock:
    """A lock held in Redis under `name`; release and extend check the owner token atomically."""

    def __init__(self, cache: RedisCache, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self._cache = cache

    async def release(self) -> bool:
        """Delete the lock if still ours; False if it expired or another owner took it."""
        with self._cache._translate("release lock"):
            deleted = await self._cache._release(
                keys=[self._cache._lock_key(self.name)], args=[self.token]
            )
        return bool(deleted)

    async def extend(self, ttl: float) -> bool:
        """Push the expiry to `ttl` seconds from now if still ours; False otherwise."""
        check_ttl(ttl)
        with self._cache._translate("extend lock"):
            extended = await self._cache._extend(
                keys=[self._cache._lock_key(self.name)], args=[self.token, _ms(ttl)]
            )
        return bool(extended)


class RedisCache:
    """The `Cache` protocol on Redis.

    Keys live under `key_prefix + "kv:"` and locks under `key_prefix + "lock:"`, so a key and
    a lock of the same name never collide. `socket_timeout` bounds connecting and every
    command; a refused connection is retried once at once (it is cheap and heals pooled
    connections broken by a Redis restart), a timeout is not retried. Raises
    `BackendUnavailable(part="cache")` when Redis cannot answer.
    """

    def __init__(
        self, url: str, *, key_prefix: str = "wheelyard:", socket_timeout: float = 0.5
    ) -> None:
        self._where = describe_url(url)
        self._prefix = key_prefix
        self._redis = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=False,
        )
        self._incr = self._redis.register_script(_INCR)
        self._set_max = self._redis.register_script(_SET_MAX)
        self._release = self._redis.register_script(_RELEASE)
        self._extend = self._redis.register_script(_EXTEND)

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or None when absent or expired."""
        with self._translate("get"):
            value = await self._redis.get(self._key(key))
        # decode_responses is off, so redis-py hands back the bytes Redis stored.
        return cast("bytes | None", value)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`; with `ttl` it expires after that many seconds, without it never."""
        check_ttl(ttl)
        with self._translate("set"):
            await self._redis.set(self._key(key), value, px=None if ttl is None else _ms(ttl))

    async def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""
        with self._translate("delete"):
            await self._redis.delete(self._key(key))

    async def set_max(self, key: str, value: int, *, ttl: float) -> int:
        """Atomically store `value` unless the key holds a larger integer (one Lua script)."""
        check_ttl(ttl)
        with self._translate("set_max"):
            result = await self._set_max(keys=[self._key(key)], args=[int(value), _ms(ttl)])
        return int(result)

    async def incr(self, key: str, *, ttl: float) -> int:
        """Atomically add one and return the new value; a new counter expires after `ttl`."""
        check_ttl(ttl)
        with self._translate("incr"):
            value = await self._incr(keys=[self._key(key)], args=[_ms(ttl)])
        return int(value)

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[Lock]:
        """Acquire `name` (polling at most `wait` seconds), hold it in the block, release after.

        Raises LockTimeout when still held by another owner after `wait`, BackendUnavailable
        when Redis cannot answer. A failed release on exit is not raised: the lock then
        expires after `ttl`, which is the protocol's promise for a holder that died.
        """
        check_lock_args(ttl, wait)
        return self._hold(name, ttl, wait)

    @asynccontextmanager
    async def _hold(self, name: str, ttl: float, wait: float) -> AsyncIterator[Lock]:
        held = await self._acquire(name, ttl, wait)
        try:
            yield held
        finally:
            with suppress(BackendUnavailable):
                await held.release()

    async def _acquire(self, name: str, ttl: float, wait: float) -> RedisLock:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        token = uuid4().hex
        key = self._lock_key(name)
        pause = _POLL_FIRST
        while True:
            with self._translate("acquire lock"):
                acquired = await self._redis.set(key, token, nx=True, px=_ms(ttl))
            if acquired:
                return RedisLock(self, name, token)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LockTimeout(f"lock {name!r} is still held after waiting {wait:g}s")
            # Jitter spreads waiters so they do not all hit Redis in the same millisecond.
            jitter = random.uniform(0.5, 1.5)  # noqa: S311 - not used for security
            await asyncio.sleep(min(remaining, pause * jitter))
            pause = min(pause * 2, _POLL_MAX)

    async def ping(self) -> None:
        """Raise `BackendUnavailable` unless Redis answers PING right now."""
        with self._translate("ping"):
            await self._redis.ping()

    async def close(self) -> None:
        """Close the connection pool; the cache is unusable afterwards."""
        with self._translate("close"):
            await self._redis.aclose()

    def _key(self, key: str) -> str:
        return f"{self._prefix}kv:{key}"

    def _lock_key(self, name: str) -> str:
        return f"{self._prefix}lock:{name}"

    @contextmanager
    def _translate(self, operation: str) -> Iterator[None]:
        # OSError covers socket errors redis-py lets through, and the builtin TimeoutError.
        try:
            yield
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(
                f"cache (Redis at {self._where}) failed during {operation}: "
                f"{type(exc).__name__}: {exc}",
                part="cache",
            ) from exc
