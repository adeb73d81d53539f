"""In-process memory bounded in bytes: the one way a process remembers computed values.

`functools.lru_cache(maxsize=N)` bounds entries, not memory: N entries of upstream-controlled
strings (a version, a requires-python, a yanked reason) can be any size. `bytes_memo` keeps a
least-recently-used cache (cachetools' `LRUCache` with a size function) whose total estimated
size stays under a byte budget. Values larger than the budget are computed and not kept.
`ByteLRU` is the same bound for a mapping its owner fills itself (verified tokens, decoded
records, repository views), with `estimate_size` for values that are not plain strings.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable, Hashable
from functools import wraps
from typing import Any, Generic, ParamSpec, TypeVar

from cachetools import LRUCache

P = ParamSpec("P")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: What one entry costs besides its key and value (dict slot, LRU links, tuples).
ENTRY_OVERHEAD = 200

Sizer = Callable[[tuple[Any, ...], Any], int]


def _length(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value) + 50
    if isinstance(value, tuple):
        return 56 + sum(len(v) + 58 if isinstance(v, str) else 64 for v in value)
    return 64


def default_size(args: tuple[Any, ...], result: Any) -> int:
    """A cheap estimate of an entry's bytes: strings and bytes by length, tuples of strings by
    their parts, anything else 64 bytes (pass `size=` for bigger objects)."""
    return sum(map(_length, args)) + _length(result)


def bytes_memo(
    max_bytes: int, *, size: Sizer = default_size
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Memoize a function of hashable positional arguments in at most `max_bytes`.

    An entry's size is `size(args, result) + ENTRY_OVERHEAD`. Thread-safe (parsers and
    renderers run in worker threads). The wrapped function gains `cache_clear()` and
    `cache_bytes()`.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        cache: LRUCache[Hashable, tuple[R, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry[1]
        )
        lock = threading.Lock()

        @wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            assert not kwargs, "bytes_memo takes positional arguments only"
            with lock:
                hit = cache.get(args)
            if hit is not None:
                return hit[0]
            result = func(*args, **kwargs)
            cost = size(args, result) + ENTRY_OVERHEAD
            if cost <= max_bytes:
                with lock:
                    cache[args] = (result, cost)
            return result

        def cache_clear() -> None:
            with lock:
                cache.clear()

        def cache_bytes() -> int:
            return int(cache.currsize)

        wrapper.cache_clear = cache_clear  # type: ignore[attr-defined]
        wrapper.cache_bytes = cache_bytes  # type: ignore[attr-defined]
        return wrapper

    return decorate


def estimate_size(value: Any, _depth: int = 0) -> int:
    """A cheap estimate of the bytes `value` holds: `sys.getsizeof` of it and, a few levels
    deep, of what it contains (strings, bytes, numbers, tuples, lists, sets, dicts, dataclasses
    and objects with `__slots__` or a `__dict__`). Shared objects are counted at every use,
    which errs on the safe side for a budget."""
    size = sys.getsizeof(value)
    if _depth >= 6 or isinstance(value, str | bytes | bytearray | int | float | bool | None):
        return size
    deeper = _depth + 1
    if isinstance(value, dict):
        return size + sum(
            estimate_size(k, deeper) + estimate_size(v, deeper) for k, v in value.items()
        )
    if isinstance(value, tuple | list | set | frozenset):
        return size + sum(estimate_size(item, deeper) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return size + sum(
            estimate_size(getattr(value, f.name, None), deeper) for f in dataclasses.fields(value)
        )
    slots = getattr(type(value), "__slots__", ())
    if slots:
        return size + sum(estimate_size(getattr(value, n, None), deeper) for n in slots)
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return size + estimate_size(attributes, deeper)
    return size


class ByteLRU(Generic[K, V]):
    """A least-recently-used mapping whose entries' estimated sizes stay under `max_bytes`.

    An entry costs `size(key, value) + ENTRY_OVERHEAD` (default size: `estimate_size` of
    both); adding past the budget evicts the least recently used entries, and an entry larger
    than the whole budget is not kept. Not thread-safe: for state used on one event loop.
    """

    def __init__(self, max_bytes: int, size: Callable[[K, V], int] | None = None) -> None:
        self.max_bytes = max_bytes
        self._size = size or (lambda key, value: estimate_size(key) + estimate_size(value))
        self._entries: LRUCache[K, tuple[V, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry[1]
        )

    def get(self, key: K) -> V | None:
        """The value under `key` (now the most recently used), or None."""
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key`, evicting the least recently used entries past the budget."""
        cost = self._size(key, value) + ENTRY_OVERHEAD
        self._entries.pop(key, None)
        if cost <= self.max_bytes:
            self._entries[key] = (value, cost)

    def pop(self, key: K) -> None:
        """Forget `key` (absent is fine)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    @property
    def bytes(self) -> int:
        """The estimated bytes of every entry kept."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
