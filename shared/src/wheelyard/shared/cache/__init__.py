"""The cache: the `Cache` + `Lock` protocol, its backends, and `open_cache`, which picks one."""

from __future__ import annotations

from wheelyard.shared.cache.base import Cache, Lock, LockTimeout
from wheelyard.shared.cache.degrading import DegradingCache
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.cache.redis import RedisCache, describe_url
from wheelyard.shared.errors import ConfigurationError

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


def open_cache(url: str, *, prefix: str = "wheelyard:") -> Cache:
    """The backend named by `url`'s scheme; the one place a cache backend is chosen.

    `memory://` gives a `MemoryCache` (one process only); `redis://`, `rediss://` and
    `unix://` give a `RedisCache` whose keys start with `prefix` (nothing is connected yet:
    deployments that share a Redis keep apart by their prefixes). Callers that must survive a Redis
    outage wrap the result in `DegradingCache`. Raises `ConfigurationError` naming
    `WHEELYARD_CACHE_URL` for any other scheme or a malformed Redis URL.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "memory":
        return MemoryCache()
    if scheme in _REDIS_SCHEMES:
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
