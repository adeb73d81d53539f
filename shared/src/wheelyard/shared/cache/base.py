"""The Cache + Lock protocol: TTL key/value, counters and short-lived distributed locks.

The cache is an accelerator, never the source of truth: correctness must not depend on a key
surviving. Every backend (memory, Redis) passes `tests/contract/test_cache.py`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable


class LockTimeout(TimeoutError):
    """Raised when a lock could not be acquired within its bounded wait."""


class Lock(Protocol):
    """A held lock. `token` identifies the owner; release only deletes the lock if still ours."""

    name: str
    token: str

    async def release(self) -> bool:
        """Release if still held by this owner (compare-and-delete); False if it had expired
        or was taken over by someone else."""
        ...

    async def extend(self, ttl: float) -> bool:
        """Push the expiry to `ttl` seconds from now if still ours; False otherwise."""
        ...


@runtime_checkable
class Cache(Protocol):
    """Key/value with TTL, atomic counters, and locks with owner tokens.

    Promises:
    - `get` after `set(key, v, ttl)` returns `v` until `ttl` seconds pass, then None.
    - `incr` is atomic across all clients of the same backend; the TTL is set when the counter
      is created and not extended by later increments.
    - `lock(name, ttl, wait)` grants the lock to one holder at a time; a holder that dies loses
      it after `ttl` seconds; a waiter gives up with `LockTimeout` after `wait` seconds.
      Releasing is compare-and-delete by owner token, so an expired holder cannot release a
      lock that another task has since taken.
    - Lock names and keys are separate namespaces: `lock("x")` never touches key "x".
    - A counter reads back through `get` as its decimal ASCII bytes (b"3").
    - A TTL that is not a positive number raises ValueError; so does a negative `wait`.
    - Any key may vanish before its TTL (eviction, restart): the cache is never the truth.
    - Backends raise `BackendUnavailable(part="cache")` when they cannot answer, never their
      client library's own exceptions.
    """

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`; with `ttl` it expires after that many seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""
        ...

    async def set_max(self, key: str, value: int, *, ttl: float) -> int:
        """Atomically store `value` unless the key already holds a larger integer; return the
        value held afterwards. Used for serials, which must never move backwards."""
        ...

    async def incr(self, key: str, *, ttl: float) -> int:
        """Atomically add one and return the new value; a new counter expires after `ttl`."""
        ...

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[Lock]:
        """Acquire `name` (polling at most `wait` seconds), hold it in the block, release after."""
        ...

    async def ping(self) -> None:
        """Raise `BackendUnavailable` unless the cache answers right now."""
        ...

    async def close(self) -> None:
        """Release connections; the cache is unusable afterwards."""
        ...
