"""The proxy's stored pages on SQLite and Postgres: pages as compressed streams of files, and
negative entries (upstream 404s for names anyone may ask for) that do not pile up (issue 9)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from sqlmodel import select

from wheelyard.proxy_cache.pages import NEGATIVE_PURGE_AFTER, ProxyPages
from wheelyard.proxy_cache.upstream import UpstreamClient
from wheelyard.shared.cache import MemoryCache
from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.models import ProxyPage
from wheelyard.shared.domain import proxied as store
from wheelyard.shared.domain.repositories import apply_repository
from wheelyard.shared.packaging.simple.model import SimpleFile
from wheelyard.testing.db_fixtures import Database


async def _proxy(db: Database) -> int:
    async with db.sessions() as s:
        view = await apply_repository(
            s,
            RepositoryConfig(
                name="mirror", type="proxy", upstreams=[UpstreamConfig(url="http://u.example/")]
            ),
        )
        await s.commit()
        return view.id


def _file(i: int) -> SimpleFile:
    name = f"demo-{i}.0-py3-none-any.whl"
    return SimpleFile(
        filename=name,
        url=f"https://u.example/f/{name}",
        sha256=f"{i:064x}",
        size=i,
        upload_time=datetime(2026, 1, 1, tzinfo=UTC),
        yanked="why" if i % 2 else False,
        upstream_url=f"https://u.example/f/{name}",
    )


async def test_a_page_is_stored_as_a_stream_and_read_back_file_by_file(
    database: Database,
) -> None:
    repo = await _proxy(database)
    writer = store.PageWriter()
    for i in range(1, 2001):
        writer.add(_file(i), f"{i}.0")
    head, blob = writer.finish({"versions": ["1.0"], "source": 0, "serial": 7})
    assert head["count"] == 2000 and len(blob) < 2000 * 100  # compressed
    await store.save(
        database.sessions,
        repo,
        "demo",
        data=head,
        files=blob,
        etag=None,
        last_modified=None,
        fetched_at=time.time(),
        missing=False,
    )
    async with database.sessions() as s:
        row = await store.load(s, repo, "demo")
        content = await store.load_content(s, repo, "demo")
    assert row is not None and row.usable and row.version == head["digest"]
    assert content is not None
    files = list(content.files())
    # Each file carries when the repository first listed it, apart from the upstream's time.
    assert {f.first_seen for f in files} == {writer.now}
    assert [replace(f, first_seen=None) for f in files] == [_file(i) for i in range(1, 2001)]
    found = content.find("demo-1234.0-py3-none-any.whl")
    assert found is not None and replace(found, first_seen=None) == _file(1234)
    assert content.find("demo-1234.0-py3-none-any.whl.metadata") is None


async def test_a_stored_answer_is_replaced_only_by_a_later_one(database: Database) -> None:
    repo = await _proxy(database)
    now = time.time()

    async def answer(version: str | None, fetched_at: float) -> bool:
        writer = store.PageWriter()
        writer.add(_file(1), "1.0")
        head, blob = writer.finish({"versions": [version], "source": 0})
        return await store.save(
            database.sessions,
            repo,
            "demo",
            data=head if version is not None else None,
            files=blob if version is not None else None,
            etag=version,
            last_modified=None,
            fetched_at=fetched_at,
            missing=False,
        )

    async def stored() -> tuple[list[str], str | None]:
        async with database.sessions() as s:
            row = await store.load(s, repo, "demo")
        assert row is not None
        return row.head["versions"], row.etag

    assert await answer("2.0", now) is True  # a new row
    assert await answer("1.0", now - 10) is False  # fetched earlier: the later one stays
    assert await stored() == (["2.0"], "2.0")
    assert await answer("3.0", now + 10) is True
    assert await stored() == (["3.0"], "3.0")
    assert await answer(None, now + 20) is True  # revalidated (a 304): the page is kept
    assert await stored() == (["3.0"], None)


async def test_expired_negative_entries_are_purged_and_nothing_else(database: Database) -> None:
    repo = await _proxy(database)
    now = time.time()
    old = now - NEGATIVE_PURGE_AFTER - 5
    for project, when, missing in (
        ("unknown-old", old, True),
        ("unknown-new", now, True),
        ("known-old", old, False),
    ):
        await store.save(
            database.sessions,
            repo,
            project,
            data=None,
            etag=None,
            last_modified=None,
            fetched_at=when,
            missing=missing,
        )
    pages = ProxyPages(
        sessions=database.sessions, cache=MemoryCache(), client=UpstreamClient(), default_ttl=60
    )
    assert await pages.purge_negatives() == 1
    async with database.sessions() as s:
        left = sorted((await s.exec(select(ProxyPage.project))).all())
    assert left == ["known-old", "unknown-new"]
    assert await pages.purge_negatives() == 0
    await pages.client.aclose()


async def _listed(
    database: Database, repo: int, names: list[str], seen_at: datetime, *, fetched_at: datetime
) -> None:
    """Store an upstream answer of `demo` that listed `names` first at `seen_at`."""
    await store.save(
        database.sessions,
        repo,
        "demo",
        data=None,
        etag=None,
        last_modified=None,
        fetched_at=fetched_at.timestamp(),
        missing=False,
        new_files=names,
        seen_at=seen_at,
    )


async def test_first_seen_times_are_kept_per_repository_and_never_moved(
    database: Database,
) -> None:
    repo = await _proxy(database)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    names = [f"demo-{i}.0-py3-none-any.whl" for i in range(1200)]  # more than one batch
    await _listed(database, repo, names, first, fetched_at=first)
    # A later listing (another replica, a refresh) keeps the earlier time and adds new names,
    # even when its answer is older than the stored page and does not replace it.
    later = datetime(2026, 2, 1, tzinfo=UTC)
    stale_answer = datetime(2025, 12, 1, tzinfo=UTC)
    await _listed(database, repo, [names[0], "demo-x.tar.gz"], later, fetched_at=stale_answer)
    async with database.sessions() as s:
        seen = await store.seen_times(s, repo, "demo")
        other = await store.seen_times(s, repo, "other")
    assert other == {}
    assert len(seen) == 1201
    assert datetime.fromisoformat(seen[names[0]]) == first
    assert datetime.fromisoformat(seen["demo-x.tar.gz"]) == later
    # A writer given those times reuses them and reports only the new file.
    writer = store.PageWriter(seen, now=datetime(2026, 3, 1, tzinfo=UTC))
    writer.add(_file(0), "0.0")
    writer.add(replace(_file(1), filename="brand-new-1.0.tar.gz"), "1.0")
    assert writer.new_files == ["brand-new-1.0.tar.gz"]
