"""`ProxyPages`: when a proxy page is fresh, when it is refetched, and who waits for whom.

In process: a fake upstream client (answers scripted, each fetch held until the test lets it
go), the in-memory cache, and a real SQLite database migrated once per module and copied for
each test. The module's clock (`pages.time`) is replaced, so pages age without sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.proxy_cache import pages as pages_module
from wheelyard.proxy_cache.breaker import CircuitBreaker
from wheelyard.proxy_cache.pages import (
    NEGATIVE_TTL,
    CurrentPage,
    PageState,
    ProxyPages,
)
from wheelyard.proxy_cache.upstream import PageFetch
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.engine import create_engine, session_factory
from wheelyard.shared.db.migrate import upgrade_database
from wheelyard.shared.domain.repositories import RepositoryView, apply_repository
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.web.pagecache import PageCache

UPSTREAM = "https://upstream.invalid/simple/"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
TTL = 300
START = 1_800_000_000.0


def page_body(name: str, *versions: str) -> bytes:
    """A PEP 691 page of `name` listing one sdist per version."""
    files = [
        {
            "filename": f"{name}-{version}.tar.gz",
            "url": f"https://files.invalid/{name}-{version}.tar.gz",
            "hashes": {"sha256": f"{index:064x}"},
        }
        for index, version in enumerate(versions, start=1)
    ]
    page = {"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": versions}
    return json.dumps(page).encode()


class Clock:
    """`time.time` for the pages module: starts at START, moves when told."""

    def __init__(self) -> None:
        self.now = START

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeUpstream:
    """An `UpstreamClient` stand-in: `fetch_page` answers from a script, one answer per call
    (the last one repeats), and waits for `hold` when it is cleared."""

    def __init__(self) -> None:
        self.breaker = CircuitBreaker()
        self.answers: list[PageFetch | Exception] = []
        self.calls: list[dict[str, Any]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.entered = asyncio.Event()

    def answer(self, *answers: PageFetch | Exception) -> None:
        self.answers = list(answers)

    async def fetch_page(
        self,
        upstream: UpstreamConfig,
        name: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> PageFetch:
        self.calls.append({"upstream": upstream.url, "name": name, "etag": etag})
        self.entered.set()
        await self.hold.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        # Each answer gets a body of its own: the caller reads and closes it (a spooled file).
        return dataclasses.replace(answer, body=io.BytesIO(_BODIES.get(id(answer), b"")))


#: The body bytes of each canned answer, by the answer's id.
_BODIES: dict[int, bytes] = {}


def ok(name: str, *versions: str, etag: str | None = None) -> PageFetch:
    body = page_body(name, *versions)
    answer = PageFetch(
        status=200,
        body=io.BytesIO(body),
        content_type=JSON_V1,
        url=f"{UPSTREAM}{name}/",
        etag=etag,
    )
    _BODIES[id(answer)] = body
    return answer


NOT_FOUND = PageFetch(status=404)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite database file to copy from."""
    path = tmp_path_factory.mktemp("proxy-pages-db") / "template.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def sessions(
    migrated: Path, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    path = tmp_path / "wheelyard.db"
    shutil.copy(migrated, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def repo(sessions: async_sessionmaker[AsyncSession]) -> RepositoryView:
    spec = RepositoryConfig(
        name="pypi", type="proxy", ttl=TTL, upstreams=[UpstreamConfig(url=UPSTREAM, timeout=5)]
    )
    async with sessions() as session:
        view = await apply_repository(session, spec)
        await session.commit()
    return view


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(pages_module, "time", SimpleNamespace(time=clock.time))
    return clock


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
async def cache() -> AsyncIterator[MemoryCache]:
    memory = MemoryCache()
    yield memory
    await memory.close()


@pytest.fixture
def pages(
    sessions: async_sessionmaker[AsyncSession],
    cache: MemoryCache,
    upstream: FakeUpstream,
    clock: Clock,
) -> ProxyPages:
    return ProxyPages(
        sessions=sessions,
        cache=cache,
        client=upstream,  # type: ignore[arg-type]
        default_ttl=60,
    )


def view(ttl: int | None) -> RepositoryView:
    return RepositoryView(
        id=1,
        storage="default",
        name="pypi",
        type="proxy",
        visibility="public",
        ttl=ttl,
        settings={},
    )


def no_database() -> AsyncSession:
    raise AssertionError("a fresh page must be served without a database session")


def without_stores(default_ttl: int) -> ProxyPages:
    """ProxyPages for the pure freshness rules: no database, no upstream."""
    return ProxyPages(
        sessions=no_database,
        cache=MemoryCache(),
        client=None,  # type: ignore[arg-type]
        default_ttl=default_ttl,
    )


# -- freshness ---------------------------------------------------------------------------------


def test_a_page_is_fresh_for_the_repositorys_ttl() -> None:
    pages = without_stores(default_ttl=60)
    state = PageState("v1", fetched_at=START, missing=False)

    assert pages.ttl(view(ttl=100)) == 100.0
    assert pages.is_fresh(view(ttl=100), state, START + 99.9)
    assert not pages.is_fresh(view(ttl=100), state, START + 100)
    # No TTL of its own: the service's default.
    assert pages.ttl(view(ttl=None)) == 60.0
    assert pages.is_fresh(view(ttl=None), state, START + 59.9)
    assert not pages.is_fresh(view(ttl=None), state, START + 60)
    # TTL 0: never fresh, every request revalidates.
    assert not pages.is_fresh(view(ttl=0), state, START)


@pytest.mark.parametrize("ttl", [0, 30, 3600, None])
def test_an_upstream_404_is_believed_for_the_negative_ttl_whatever_the_ttl(
    ttl: int | None,
) -> None:
    pages = without_stores(default_ttl=86400)
    missing = PageState("-", fetched_at=START, missing=True)

    assert pages.is_fresh(view(ttl), missing, START + NEGATIVE_TTL - 0.1)
    assert not pages.is_fresh(view(ttl), missing, START + NEGATIVE_TTL)


def test_page_state_round_trips_through_the_cache_encoding() -> None:
    state = PageState("abc123", fetched_at=START + 0.25, missing=True)

    assert PageState.decode(state.encode()) == state
    assert PageState.decode(b"garbage") is None


# -- current() ---------------------------------------------------------------------------------


async def test_the_first_request_fetches_and_stores_the_page(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream
) -> None:
    upstream.answer(ok("demo", "1.0"))

    current = await pages.current(repo, "demo")

    assert current.stale is False
    assert [c["name"] for c in upstream.calls] == ["demo"]
    content = await pages.content(repo, "demo", current)
    assert {f.filename for f in content.files()} == {"demo-1.0.tar.gz"}


async def test_a_fresh_page_is_served_from_the_cache_without_a_fetch(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.answer(ok("demo", "1.0"))
    first = await pages.current(repo, "demo")
    pages.sessions = no_database  # the state must come from the cache alone

    clock.advance(TTL - 1)
    again = await pages.current(repo, "demo")

    assert again == CurrentPage(first.version)
    assert len(upstream.calls) == 1


async def test_a_fresh_negative_entry_is_a_404_without_a_fetch(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.answer(NOT_FOUND)
    with pytest.raises(NotFound):
        await pages.current(repo, "ghost")
    pages.sessions = no_database

    clock.advance(NEGATIVE_TTL - 1)
    with pytest.raises(NotFound):
        await pages.current(repo, "ghost")

    assert len(upstream.calls) == 1


async def test_a_stale_page_is_refetched_once_and_the_new_page_is_current(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.answer(ok("demo", "1.0"), ok("demo", "1.0", "2.0"))
    old = await pages.current(repo, "demo")

    clock.advance(TTL)
    new = await pages.current(repo, "demo")
    clock.advance(1)
    later = await pages.current(repo, "demo")

    assert new.version != old.version and not new.stale
    assert later == CurrentPage(new.version)
    assert len(upstream.calls) == 2
    content = await pages.content(repo, "demo", later)
    assert content.row.version == new.version
    assert {f.filename for f in content.files()} == {"demo-1.0.tar.gz", "demo-2.0.tar.gz"}


async def test_the_page_just_fetched_is_read_back_from_memory(
    sessions: async_sessionmaker[AsyncSession],
    cache: MemoryCache,
    repo: RepositoryView,
    upstream: FakeUpstream,
) -> None:
    pages = ProxyPages(
        sessions=sessions,
        cache=cache,
        client=upstream,  # type: ignore[arg-type]
        default_ttl=60,
        page_cache=PageCache(cache),
    )
    upstream.answer(ok("demo", "1.0"))
    current = await pages.current(repo, "demo")
    pages.sessions = no_database  # rendering and finding files need no database read

    content = await pages.content(repo, "demo", current)

    assert content.row.version == current.version
    assert {f.filename for f in content.files()} == {"demo-1.0.tar.gz"}


async def test_concurrent_requests_without_a_usable_copy_share_one_refresh(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    # A stale negative entry: nothing to serve meanwhile, so everyone waits for the one fetch.
    upstream.answer(NOT_FOUND)
    with pytest.raises(NotFound):
        await pages.current(repo, "late")
    clock.advance(NEGATIVE_TTL)
    upstream.answer(ok("late", "1.0"))
    upstream.hold.clear()
    upstream.entered.clear()

    waiters = [asyncio.create_task(pages.current(repo, "late")) for _ in range(6)]
    await asyncio.wait_for(upstream.entered.wait(), 5)
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters), "a caller without a copy did not wait"
    upstream.hold.set()
    results = await asyncio.gather(*waiters)

    assert len(upstream.calls) == 2  # the 404, then one refresh for all six
    assert len({r.version for r in results}) == 1
    assert not any(r.stale for r in results)


async def test_a_usable_copy_is_served_while_a_refresh_is_running(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.answer(ok("demo", "1.0"), ok("demo", "1.0", "2.0"))
    old = await pages.current(repo, "demo")
    clock.advance(TTL + 1)
    upstream.hold.clear()
    upstream.entered.clear()

    refreshing = asyncio.create_task(pages.current(repo, "demo"))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    others = await asyncio.wait_for(
        asyncio.gather(*(pages.current(repo, "demo") for _ in range(5))), 5
    )
    assert not refreshing.done()
    upstream.hold.set()
    new = await refreshing

    assert all(page == CurrentPage(old.version) for page in others)
    assert new.version != old.version
    assert len(upstream.calls) == 2  # the first fetch and the one refresh
    assert await pages.current(repo, "demo") == CurrentPage(new.version)


async def test_a_failing_upstream_serves_the_last_good_page_marked_stale(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    upstream.answer(ok("demo", "1.0"), UpstreamError("502 from upstream"))
    good = await pages.current(repo, "demo")

    clock.advance(TTL + 1)
    served = await pages.current(repo, "demo")

    assert served == CurrentPage(good.version, stale=True)


async def test_a_failing_upstream_without_a_copy_raises(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream
) -> None:
    upstream.answer(UpstreamError("connection refused"))

    with pytest.raises(UpstreamError, match="connection refused"):
        await pages.current(repo, "demo")


async def test_a_stored_page_may_serve_lookups_past_its_ttl(
    pages: ProxyPages, repo: RepositoryView, upstream: FakeUpstream, clock: Clock
) -> None:
    # `fresh=False` (file lookups): any stored copy will do, no refetch.
    upstream.answer(ok("demo", "1.0"))
    first = await pages.current(repo, "demo")

    clock.advance(TTL * 10)
    again = await pages.current(repo, "demo", fresh=False)

    assert again == CurrentPage(first.version)
    assert len(upstream.calls) == 1
