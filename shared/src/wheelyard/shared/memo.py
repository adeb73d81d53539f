"""In-process memoization bounded in bytes: the one way a process remembers computed values.

`functools.lru_cache(maxsize=N)` bounds entries, not memory: N entries of upstream-controlled
strings (a version, a requires-python, a yanked reason) can be any size. `bytes_memo` keeps a
least-recently-used cache (cachetools' `LRUCache` with a size function) whose total estimated
size stays under a byte budget. Values larger than the budget are computed and not kept.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from cachetools import LRUCache

P = ParamSpec("P")
R = TypeVar("R")

#: What one entry costs besides its key and value (dict slot, LRU links, tuple).
ENTRY_OVERHEAD = 160


def size_of(value: Any) -> int:
    """A cheap estimate of what `value` holds, in bytes: strings and bytes by length, tuples
    and frozen dataclasses with slots by their parts (one level deep), anything else by
    `sys.getsizeof`."""
    if isinstance(value, str | bytes):
        return len(value) + 50
    if isinstance(value, tuple):
        return 56 + sum(_shallow(v) for v in value)
    slots = getattr(type(value), "__slots__", None)
    if slots:
        return 64 + sum(_shallow(getattr(value, s, None)) for s in slots)
    return sys.getsizeof(value)


def _shallow(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value) + 50
    if isinstance(value, tuple):
        return 56 + 8 * len(value) + sum(len(v) for v in value if isinstance(v, str))
    return 32


def bytes_memo(
    max_bytes: int, *, key_size: Callable[..., int] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Memoize a function of hashable positional arguments in at most `max_bytes`.

    An entry's size is `size_of(args) + size_of(result) + ENTRY_OVERHEAD` (or `key_size(*args)`
    instead of `size_of(args)` when given). Thread-safe (parsers run in worker threads). The
    wrapped function gains `cache_clear()` and `cache_bytes()`.
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
            size = (key_size(*args) if key_size else size_of(args)) + size_of(result)
            size += ENTRY_OVERHEAD
            if size <= max_bytes:
                with lock:
                    cache[args] = (result, size)
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
