"""In-process caches are bounded in bytes, not entries (issue 9, "Resources are bounded"):
upstream-controlled strings (a yanked reason, a version, a requires-python) can be any size, so
a cache of N entries can hold any amount of memory."""

from __future__ import annotations

import gc
import tracemalloc

from wheelyard.shared.cache.memory import ENTRY_OVERHEAD, MemoryCache
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.packaging.simple import render_html, render_json
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile, sort_versions

MiB = 1024 * 1024


def _page(i: int, reason_bytes: int) -> ProjectPage:
    files = [
        SimpleFile(
            filename=f"p{i}-{j}.0.tar.gz",
            url=f"https://u.example/p{i}-{j}.0.tar.gz",
            sha256="ab" * 32,
            size=1,
            yanked=("r" * reason_bytes) + f"{i}-{j}",
        )
        for j in range(100)
    ]
    return ProjectPage(name=f"p{i}", files=files, versions=[f"{j}.0" for j in range(100)])


def test_rendered_fragments_stay_within_their_byte_budget() -> None:
    """2,000 files with 20 KB yanked reasons: an entry-bounded memo kept all 40 MB."""
    render_json._json_file.cache_clear()  # type: ignore[attr-defined]
    render_html._html_anchor.cache_clear()  # type: ignore[attr-defined]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20):
            page = _page(i, 20_000)
            render_json.render_project_json(page)
            render_html.render_project_html(page)
            del page
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    budget = render_json.FRAGMENT_CACHE_BYTES + render_html.FRAGMENT_CACHE_BYTES
    assert retained < budget + 4 * MiB, retained
    assert render_json._json_file.cache_bytes() <= render_json.FRAGMENT_CACHE_BYTES  # type: ignore[attr-defined]


def test_version_memos_stay_within_their_byte_budget() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            sort_versions([f"{i}.{j}.dev{'0' * 2000}" for j in range(50)])
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 16 * MiB, retained


async def test_the_memory_cache_counts_what_each_entry_costs() -> None:
    cache = MemoryCache(max_bytes=MiB)
    for i in range(50_000):
        await cache.set(f"k{i}", b"1", ttl=60)
    assert len(cache._data) * ENTRY_OVERHEAD <= MiB
    assert cache._bytes <= MiB


async def test_the_repository_directory_never_remembers_impossible_names() -> None:
    def no_sessions() -> None:
        raise AssertionError("an impossible name must not reach the database")

    directory = RepositoryDirectory(no_sessions)  # type: ignore[arg-type]
    assert await directory.get("default", "x" * 10_000) is None
    assert await directory.get("../etc", "passwd") is None
    assert len(directory._known) == 0
