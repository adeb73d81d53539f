"""In-process cache: a bounded dict with TTLs, counters and locks, for one process and one loop.

Used for `memory://` (single-process deployments and tests) and as the fallback of
`DegradingCache` when Redis is down. Every operation runs without an await between its read and
its write, so it is atomic for any number of asyncio tasks on one event loop. It is not
thread-safe and shares nothing between processes: locks are per-process single-flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from uuid import uuid4

from wheelyard.shared.cache.base import Lock, LockTimeout

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: What an entry costs besides its key and value (the entry object, dict and order links):
#: counted, so that a budget in bytes holds for many tiny entries too.
ENTRY_OVERHEAD = 160
# How often, at most, a full scan for expired entries may run when the cache is over budget:
# the scan is O(n), so it must not run on every write of a cache full of live entries.
_SWEEP_INTERVAL = 1.0


def check_ttl(ttl: float | None) -> None:
    """Reject TTLs that no backend can honour (zero, negative, NaN)."""
    if ttl is not None and not ttl > 0:
        raise ValueError(f"cache ttl must be a positive number of seconds, got {ttl!r}")


def check_lock_args(ttl: float, wait: float) -> None:
    """Reject a lock TTL that is not positive or a wait that is negative."""
    check_ttl(ttl)
    if not wait >= 0:
        raise ValueError(f"lock wait must be zero or more seconds, got {wait!r}")


def _cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float | None

    def alive(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(slots=True)
class _Held:
    token: str
    expires_at: float


class MemoryLock:
    """A lock held in a `MemoryCache`; release and extend only act while it is still ours."""

    def __init__(self, cache: MemoryCache, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self._cache = cache

    async def release(self) -> bool:
        """Release if still held by this owner; False if it expired or was taken over."""
        return self._cache._release(self.name, self.token)

    async def extend(self, ttl: float) -> bool:
        """Push the expiry to `ttl` seconds from now if still ours; False otherwise."""
        check_ttl(ttl)
        return self._cache._extend(self.name, self.token, ttl)


class MemoryCache:
    """The `Cache` protocol in one process's memory, bounded in bytes (and, as a backstop, in
    entries).

    Expired entries are dropped lazily when read. When a write takes the cache past
    `max_bytes` (key characters plus value bytes plus `ENTRY_OVERHEAD` per entry) or
    `max_entries`, expired entries are swept and then the oldest writes are evicted until it
    fits; a value larger than `max_bytes` is not stored. Any key may therefore vanish early,
    as the protocol allows. Counters are stored as their decimal ASCII bytes, as Redis does.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._last_sweep = float("-inf")
        self._locks: dict[str, _Held] = {}
        # Waiters on a held lock sleep on its event; release sets it so they retry at once
        # instead of polling. Expiry sets nothing, so waiters also wake at the holder's expiry.
        self._lock_events: dict[str, asyncio.Event] = {}
        #: Moves on every write (set, delete, set_max, incr): what was read before is unchanged
        #: while it stays put (the replay token of wheelyard.shared.web.replay).
        self.epoch = 0

    # -- key/value ------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or None when absent or expired."""
        entry = self._live(key, time.monotonic())
        return None if entry is None else entry.value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`; with `ttl` it expires after that many seconds, without it never."""
        check_ttl(ttl)
        now = time.monotonic()
        self.epoch += 1
        self._remove(key)
        if _cost(key, value) > self._max_bytes:
            return
        self._data[key] = _Entry(bytes(value), None if ttl is None else now + ttl)
        self._bytes += _cost(key, value)
        self._make_room(now)

    async def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""
        self.epoch += 1
        self._remove(key)

    async def set_max(self, key: str, value: int, *, ttl: float) -> int:
        """Store `value` unless the key holds a larger integer; return what it holds after."""
        check_ttl(ttl)
        entry = self._live(key, time.monotonic())
        if entry is not None:
            current = int(entry.value)
            if current >= value:
                return current
        await self.set(key, str(value).encode("ascii"), ttl=ttl)
        return value

    async def incr(self, key: str, *, ttl: float) -> int:
        """Add one and return the new value; a new (or expired) counter expires after `ttl`.

        Raises ValueError if the key holds something other than a decimal integer.
        """
        check_ttl(ttl)
        now = time.monotonic()
        entry = self._live(key, now)
        if entry is None:
            await self.set(key, b"1", ttl=ttl)
            return 1
        value = int(entry.value) + 1
        encoded = str(value).encode("ascii")
        self.epoch += 1
        self._bytes += len(encoded) - len(entry.value)
        # Updating in place keeps the counter's place in the eviction order and its expiry.
        entry.value = encoded
        return value

    # -- locks ----------------------------------------------------------------------------

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[Lock]:
        """Acquire `name` (waiting at most `wait` seconds), hold it in the block, release after.

        Raises LockTimeout if another holder keeps it longer than `wait`.
        """
        check_lock_args(ttl, wait)
        return self._hold(name, ttl, wait)

    @asynccontextmanager
    async def _hold(self, name: str, ttl: float, wait: float) -> AsyncIterator[Lock]:
        held = await self._acquire(name, ttl, wait)
        try:
            yield held
        finally:
            self._release(name, held.token)

    async def _acquire(self, name: str, ttl: float, wait: float) -> MemoryLock:
        token = uuid4().hex
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            held = self._locks.get(name)
            if held is None or held.expires_at <= now:
                self._locks[name] = _Held(token, now + ttl)
                if len(self._locks) > self._max_entries:
                    self._sweep_locks(now)
                return MemoryLock(self, name, token)
            remaining = deadline - now
            if remaining <= 0:
                raise LockTimeout(f"lock {name!r} is still held after waiting {wait:g}s")
            event = self._lock_events.get(name)
            if event is None:
                event = self._lock_events[name] = asyncio.Event()
            try:
                async with asyncio.timeout(min(remaining, held.expires_at - now)):
                    await event.wait()
            except TimeoutError:
                pass

    def _release(self, name: str, token: str) -> bool:
        held = self._locks.get(name)
        if held is None or held.token != token:
            return False
        del self._locks[name]
        event = self._lock_events.pop(name, None)
        if event is not None:
            event.set()
        # An expired lock nobody took is cleaned up, but it was no longer ours to release.
        return held.expires_at > time.monotonic()

    def _extend(self, name: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        held = self._locks.get(name)
        if held is None or held.token != token or held.expires_at <= now:
            return False
        held.expires_at = now + ttl
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def ping(self) -> None:
        """Always answers: the memory is right here."""

    async def close(self) -> None:
        """Drop every entry and lock."""
        self._data.clear()
        self._bytes = 0
        self._locks.clear()
        for event in self._lock_events.values():
            event.set()
        self._lock_events.clear()

    # -- internals ------------------------------------------------------------------------

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if not entry.alive(now):
            self._remove(key)
            return None
        return entry

    def _remove(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= _cost(key, entry.value)

    def _over_budget(self) -> bool:
        return len(self._data) > self._max_entries or self._bytes > self._max_bytes

    def _make_room(self, now: float) -> None:
        if not self._over_budget():
            return
        if now - self._last_sweep >= _SWEEP_INTERVAL:
            self._last_sweep = now
            for key in [k for k, e in self._data.items() if not e.alive(now)]:
                self._remove(key)
            self._sweep_locks(now)
        while self._over_budget():
            key, entry = self._data.popitem(last=False)
            self._bytes -= _cost(key, entry.value)

    def _sweep_locks(self, now: float) -> None:
        # Locks of holders that died without releasing would otherwise stay forever.
        for name in [n for n, h in self._locks.items() if h.expires_at <= now]:
            self._release(name, self._locks[name].token)
        for name in [n for n in self._lock_events if n not in self._locks]:
            self._lock_events.pop(name).set()
