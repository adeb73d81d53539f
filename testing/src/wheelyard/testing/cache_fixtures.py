"""Pytest fixtures for the cache: `cache` runs each test on every backend, `redis_url` names Redis.

Redis tests never skip: an unreachable Redis fails the test with a message saying how to start
it, so CI cannot silently stop testing the backend production uses.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from wheelyard.shared.cache import Cache, MemoryCache, RedisCache
from wheelyard.shared.cache.redis import describe_url
from wheelyard.shared.errors import BackendUnavailable

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the tests use: `WHEELYARD_TEST_REDIS_URL`, default a local Redis, db 0."""
    return os.environ.get("WHEELYARD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Cache]:
    """A fresh, empty cache per test on each backend (ids "memory" and "redis").

    The Redis cache has a random key prefix of its own; its keys are deleted afterwards.
    """
    if request.param == "memory":
        memory = MemoryCache()
        yield memory
        await memory.close()
        return
    prefix = f"wheelyard-test:{uuid4().hex}:"
    redis_cache = RedisCache(redis_url, key_prefix=prefix)
    unreachable = None
    try:
        await redis_cache.ping()
    except BackendUnavailable as exc:
        unreachable = exc.message
    if unreachable is not None:
        # Failed outside the except block so the report is this message, not a traceback chain.
        await redis_cache.close()
        pytest.fail(
            f"Redis is not reachable at {describe_url(redis_url)} ({unreachable}). "
            "The Redis contract tests must run: start Redis (docker compose up -d redis) "
            "or point WHEELYARD_TEST_REDIS_URL at one.",
            pytrace=False,
        )
    try:
        yield redis_cache
    finally:
        await redis_cache.close()
        await _delete_prefixed(redis_url, prefix)


async def _delete_prefixed(url: str, prefix: str) -> None:
    client = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
