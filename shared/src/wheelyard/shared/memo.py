"""In-process memoization bounded in bytes: the one way a process remembers computed values.

`functools.lru_cache(maxsize=N)` bounds entries, not memory: N entries of upstream-controlled
strings (a version, a requires-python, a yanked reason) can be any size. `bytes_memo` keeps a
least-recently-used cache (cachetools' `LRUCache` with a size function) whose total estimated
size stays under a byte budget. Values larger than the budget are computed and not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from cachetools import LRUCache

P = ParamSpec("P")
R = TypeVar("R")

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
