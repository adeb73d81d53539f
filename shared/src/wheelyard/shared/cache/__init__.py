"""The cache: the `Cache` + `Lock` protocol, its backends, and `open_cache`, which picks one.

The Redis backend is imported only when it is asked for (`open_cache` with a Redis URL, or the
`RedisCache` attribute): redis-py loads a few dozen modules (its parsers, cluster and
observability support) that a process on `memory://` never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wheelyard.shared.cache.base import Cache, Lock, LockTimeout
from wheelyard.shared.cache.degrading import DegradingCache
from wheelyard.shared.cache.memory import DEFAULT_MAX_BYTES, MemoryCache
from wheelyard.shared.errors import ConfigurationError

if TYPE_CHECKING:
    from wheelyard.shared.cache.redis import RedisCache

__all__ = [
    "Cache",
    "DegradingCache",
    "Lock",
    "LockTimeout",
    "MemoryCache",
    "RedisCache",
    "open_cache",
]

_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def open_cache(
    url: str, *, prefix: str = "wheelyard:", memory_bytes: int = DEFAULT_MAX_BYTES
) -> Cache:
    """The backend named by `url`'s scheme; the one place a cache backend is chosen.

    `memory://` gives a `MemoryCache` (one process only) of at most `memory_bytes`;
    `redis://`, `rediss://` and `unix://` give a `RedisCache` whose keys start with `prefix`
    (nothing is connected yet:
    deployments that share a Redis keep apart by their prefixes). Callers that must survive a Redis
    outage wrap the result in `DegradingCache`. Raises `ConfigurationError` naming
    `WHEELYARD_CACHE_URL` for any other scheme or a malformed Redis URL.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "memory":
        return MemoryCache(max_bytes=memory_bytes)
    if scheme in _REDIS_SCHEMES:
        from wheelyard.shared.cache.redis import RedisCache, describe_url

        try:
            return RedisCache(url, key_prefix=prefix)
        except ValueError as exc:
            raise ConfigurationError(
                f"WHEELYARD_CACHE_URL: invalid Redis URL {describe_url(url)!r}: {exc}"
            ) from exc
    # Only the scheme is echoed: the rest of a URL may hold a password.
    shown = f"scheme {scheme!r}" if scheme else "a URL without a scheme"
    raise ConfigurationError(
        f"WHEELYARD_CACHE_URL: unsupported cache backend ({shown}); "
        "use memory://, redis://host:port/db, rediss://... or unix:///path/to/socket"
    )


def __getattr__(name: str) -> Any:
    # PEP 562: `from wheelyard.shared.cache import RedisCache` imports redis-py only then.
    if name == "RedisCache":
        from wheelyard.shared.cache.redis import RedisCache

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
