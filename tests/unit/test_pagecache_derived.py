"""Values derived per serial (`PageCache.derived`): kept per (scope, serial, variant), built
once however many ask at the same time, never kept when nothing was found, and bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.web.pagecache import DERIVED_BYTES, PageCache


async def test_a_value_is_built_once_per_serial_and_variant() -> None:
    pages = PageCache(MemoryCache())
    builds: list[str] = []

    def builder(value: str) -> Callable[[], Awaitable[str]]:
        async def build() -> str:
            builds.append(value)
            await asyncio.sleep(0.01)
            return value

        return build

    got = await asyncio.gather(
        *(pages.derived("p", 1, "files", builder("one"), len) for _ in range(10))
    )
    assert got == ["one"] * 10 and builds == ["one"]
    assert await pages.derived("p", 1, "files", builder("again"), len) == "one"
    # Another serial (a commit happened) or another variant is another value.
    assert await pages.derived("p", 2, "files", builder("two"), len) == "two"
    assert await pages.derived("p", 1, "other", builder("three"), len) == "three"
    assert builds == ["one", "two", "three"]


async def test_nothing_found_is_not_remembered_and_dropping_forgets() -> None:
    pages = PageCache(MemoryCache())
    calls = 0

    async def nothing() -> str | None:
        nonlocal calls
        calls += 1
        return None

    assert await pages.derived("p", 1, "f", nothing, len) is None
    assert await pages.derived("p", 1, "f", nothing, len) is None
    assert calls == 2

    async def found() -> str:
        return "x"

    assert await pages.derived("p", 1, "g", found, len) == "x"
    pages.drop_derived("p", 1, "g")

    async def other() -> str:
        return "y"

    assert await pages.derived("p", 1, "g", other, len) == "y"


async def test_values_stay_within_the_byte_budget() -> None:
    pages = PageCache(MemoryCache())
    big = "b" * (DERIVED_BYTES // 16)
    for i in range(40):  # 2.5 times the budget

        async def build(i: int = i) -> str:
            return big + str(i)

        await pages.derived("p", i, "v", build, len)
    assert pages._derived.currsize <= DERIVED_BYTES

    async def too_big() -> str:
        return "h" * DERIVED_BYTES

    await pages.derived("p", 0, "huge", too_big, len)
    assert pages._derived.currsize <= DERIVED_BYTES
    assert "p:0:huge" not in pages._derived  # larger than an eighth: returned, not kept
