"""`open_cache` picks the backend by URL scheme and names the setting when it cannot."""

from __future__ import annotations

import pytest

from wheelyard.shared.cache import Cache, MemoryCache, RedisCache, open_cache
from wheelyard.shared.errors import ConfigurationError


async def test_memory_scheme_gives_a_memory_cache() -> None:
    cache = open_cache("memory://")
    assert isinstance(cache, MemoryCache)
    assert isinstance(cache, Cache)
    await cache.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "REDIS://127.0.0.1:6379/1",
        "rediss://user:secret@redis.example:6380/0",
        "unix:///run/redis/redis.sock?db=2",
    ],
)
async def test_redis_schemes_give_a_redis_cache_without_connecting(url: str) -> None:
    cache = open_cache(url)
    assert isinstance(cache, RedisCache)
    assert isinstance(cache, Cache)
    await cache.close()


@pytest.mark.parametrize(
    "url",
    ["memcached://127.0.0.1:11211", "http://redis:6379", "127.0.0.1:6379", "", "file:///tmp/c"],
)
def test_unknown_scheme_names_the_setting(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_cache(url)
    assert caught.value.message.startswith("WHEELYARD_CACHE_URL: ")
    assert "redis://" in caught.value.message  # says what would work


def test_error_never_echoes_a_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_cache("memcache://admin:hunter2@cache:11211")
    assert "hunter2" not in caught.value.message


def test_malformed_redis_url_names_the_setting_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_cache("redis://admin:hunter2@cache:6379/0?health_check_interval=soon")
    assert caught.value.message.startswith("WHEELYARD_CACHE_URL: ")
    assert "hunter2" not in caught.value.message
