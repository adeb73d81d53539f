"""Retention and garbage collection on SQLite and Postgres (and every blob store): pins,
orphaned blobs, and writers racing a collector."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlmodel import col, delete, select

from wheelyard.proxy_cache.downloads import DownloadStamps
from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import BlobOrphan, ProxyFile, utcnow
from wheelyard.shared.domain import blobgc, leases, maintenance, proxied
from wheelyard.shared.domain.repositories import apply_repository
from wheelyard.shared.domain.retention import (
    Rule,
    pin_proxy_files,
    pinned_among,
    pinned_filenames,
    plan,
    prune,
    unpin_proxy_files,
)
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import SimpleFile
from wheelyard.shared.storage import BlobStore, blob_key_for, sha256_of_key
from wheelyard.testing.db_fixtures import Database


async def _proxy(db: Database, name: str = "pypi") -> int:
    async with db.sessions() as s:
        view = await apply_repository(
            s,
            RepositoryConfig(
                name=name, type="proxy", upstreams=[UpstreamConfig(url="http://127.0.0.1:9/")]
            ),
        )
        await s.commit()
        return view.id


async def test_pins_are_idempotent_per_repository_and_cover_metadata(database: Database) -> None:
    repo = await _proxy(database)
    other = await _proxy(database, "other")
    async with database.sessions() as s:
        await begin_write(s)
        names = ["a-1.0-py3-none-any.whl", "a-1.0-py3-none-any.whl.metadata", "b-2.0.tar.gz"]
        assert await pin_proxy_files(s, repo, names, reason="prefetch") == 2
        await s.commit()
    async with database.sessions() as s:
        await begin_write(s)
        assert await pin_proxy_files(s, repo, ["b-2.0.tar.gz", "c-1.tar.gz"]) == 1
        await s.commit()
    async with database.sessions() as s:
        assert await pinned_filenames(s, repo) == [
            "a-1.0-py3-none-any.whl",
            "b-2.0.tar.gz",
            "c-1.tar.gz",
        ]
        assert await pinned_filenames(s, other) == []
        assert await pinned_among(s, repo, ["a-1.0-py3-none-any.whl", "zz.whl"]) == {
            "a-1.0-py3-none-any.whl"
        }
    async with database.sessions() as s:
        await begin_write(s)
        assert await unpin_proxy_files(s, repo, ["b-2.0.tar.gz", "nope.whl"]) == 1
        assert await unpin_proxy_files(s, other, ["a-1.0-py3-none-any.whl"]) == 0
        await s.commit()
    async with database.sessions() as s:
        assert await pinned_filenames(s, repo) == ["a-1.0-py3-none-any.whl", "c-1.tar.gz"]


# ---- garbage collection ---------------------------------------------------------------------


async def _blob(store: BlobStore, data: bytes) -> str:
    async with store.writer() as w:
        await w.write(data)
    assert w.result is not None
    return w.result.key


async def _reference(
    db: Database, repo: int, key: str, filename: str, write_started: datetime | None = None
) -> None:
    async with db.sessions() as s:
        started = write_started or await blobgc.db_now(s)
        await begin_write(s)
        s.add(
            ProxyFile(
                repository_id=repo,
                project="demo",
                filename=filename,
                sha256=sha256_of_key(key),
                size=1,
                blob_key=key,
            )
        )
        await blobgc.guard_references(s, [key], started)
        await s.commit()


async def _orphans(db: Database) -> dict[str, BlobOrphan]:
    """The pending and running deletions (rows of deleted blobs left out)."""
    async with db.sessions() as s:
        rows = (await s.exec(select(BlobOrphan))).all()
        return {o.blob_key: o for o in rows if o.deleted_at is None}


async def test_gc_removes_old_orphans_and_keeps_fresh_and_referenced_blobs(
    database: Database, blob_store: BlobStore
) -> None:
    repo = await _proxy(database)
    kept = await _blob(blob_store, b"referenced bytes")
    await _reference(database, repo, kept, "demo-1.0.tar.gz")
    orphan = await _blob(blob_store, b"bytes a crash left behind")
    grace = timedelta(hours=1)
    # Seen from two hours later: every blob is older than the grace period.
    later = utcnow() + timedelta(hours=2)
    dry = await blobgc.collect(database.sessions, blob_store, grace=grace, now=later, dry_run=True)
    assert dry.deleted == [orphan] and await blob_store.stat(orphan) is not None
    assert await _orphans(database) == {}  # a dry run writes nothing
    # Seen now, the orphan is fresh: noted, kept.
    fresh = await blobgc.collect(database.sessions, blob_store, grace=grace)
    assert fresh.deleted == [] and fresh.unreferenced == 1 and fresh.pending == 1
    assert set(await _orphans(database)) == {orphan}
    assert await blob_store.stat(orphan) is not None
    done = await blobgc.collect(database.sessions, blob_store, grace=grace, now=later)
    assert done.deleted == [orphan]
    assert await blob_store.stat(orphan) is None
    assert await blob_store.stat(kept) is not None
    assert await _orphans(database) == {}


async def test_a_deleted_hosted_files_bytes_are_collected_unless_still_referenced(
    database: Database, blob_store: BlobStore
) -> None:
    repo = await _proxy(database)
    shared = await _blob(blob_store, b"bytes two records hold")
    await _reference(database, repo, shared, "a-1.0.tar.gz")
    await _reference(database, repo, shared, "b-1.0.tar.gz")
    async with database.sessions() as s:
        await begin_write(s)
        await s.exec(delete(ProxyFile).where(col(ProxyFile.filename) == "a-1.0.tar.gz"))
        assert await blobgc.orphan(s, [shared], utcnow()) == 0  # b still holds it
        await s.commit()
    later = utcnow() + timedelta(days=3)
    report = await blobgc.collect(database.sessions, blob_store, now=later)
    assert report.deleted == [] and await blob_store.stat(shared) is not None
    async with database.sessions() as s:
        await begin_write(s)
        await s.exec(delete(ProxyFile).where(col(ProxyFile.filename) == "b-1.0.tar.gz"))
        assert await blobgc.orphan(s, [shared], utcnow() + timedelta(days=2)) == 1
        await s.commit()
    # Due only after the drain time given, however old the blob.
    assert (await blobgc.collect(database.sessions, blob_store, now=utcnow())).deleted == []
    assert (await blobgc.collect(database.sessions, blob_store, now=later)).deleted == [shared]


async def test_a_writer_cancels_a_pending_deletion_and_waits_for_a_running_one(
    database: Database, blob_store: BlobStore
) -> None:
    repo = await _proxy(database)
    key = await _blob(blob_store, b"bytes uploaded again")
    later = utcnow() + timedelta(days=2)
    await blobgc.collect(database.sessions, blob_store, now=utcnow())  # noted: pending
    assert set(await _orphans(database)) == {key}
    # A writer referencing the blob cancels the pending deletion in its own transaction.
    await _reference(database, repo, key, "again-1.0.tar.gz")
    assert await _orphans(database) == {}
    assert (await blobgc.collect(database.sessions, blob_store, now=later)).deleted == []
    # A deletion under way: the writer is refused, and told which bytes to write again.
    async with database.sessions() as s:
        started = await blobgc.db_now(s)
        await begin_write(s)
        s.add(BlobOrphan(blob_key=key, delete_after=utcnow(), deleting_at=utcnow()))
        await s.commit()
    with pytest.raises(blobgc.BlobBeingDeleted) as refused:
        await _reference(database, repo, key, "third-1.0.tar.gz", started)
    assert refused.value.keys == [key]
    # Finished after the writer stored its bytes: refused too (they may be gone).
    async with database.sessions() as s:
        await begin_write(s)
        row = await s.get(BlobOrphan, key)
        assert row is not None
        row.deleted_at = await blobgc.db_now(s)
        s.add(row)
        await s.commit()
    with pytest.raises(blobgc.BlobBeingDeleted):
        await _reference(database, repo, key, "third-1.0.tar.gz", started)
    async with database.sessions() as s:
        names = (await s.exec(select(ProxyFile.filename))).all()
        assert "third-1.0.tar.gz" not in names
        await blobgc.wait_deleted(s, [key], patience=5)  # nothing under way any more
    # Stored again after the deletion finished: accepted.
    await _reference(database, repo, key, "third-1.0.tar.gz")
    async with database.sessions() as s:
        assert "third-1.0.tar.gz" in (await s.exec(select(ProxyFile.filename))).all()


async def test_a_collection_racing_a_writer_never_deletes_bytes_it_commits(
    database: Database, blob_store: BlobStore
) -> None:
    """The writer's transaction is open (record added, guard passed) while a collector that
    finds the blob unreferenced and due runs: the collector must not delete the blob."""
    repo = await _proxy(database)
    key = await _blob(blob_store, b"bytes of an old, deleted upload")
    later = utcnow() + timedelta(days=2)
    async with database.sessions() as writer:
        await begin_write(writer)
        writer.add(
            ProxyFile(
                repository_id=repo,
                project="demo",
                filename="race-1.0.tar.gz",
                sha256=sha256_of_key(key),
                size=1,
                blob_key=key,
            )
        )
        await blobgc.guard_references(writer, [key], await blobgc.db_now(writer))
        collector = asyncio.create_task(blobgc.collect(database.sessions, blob_store, now=later))
        await asyncio.sleep(1.0)
        assert await blob_store.stat(key) is not None
        await writer.commit()
    report = await asyncio.wait_for(collector, 60)
    assert report.deleted == []
    assert await blob_store.stat(key) is not None
    assert await _orphans(database) == {}


async def test_a_collection_between_a_writers_store_and_its_commit_makes_it_store_again(
    database: Database, blob_store: BlobStore
) -> None:
    """The writer stores bytes an old orphan already has; a collector deletes them before the
    writer's transaction begins: the writer's commit is refused, so it stores them again."""
    repo = await _proxy(database)
    key = await _blob(blob_store, b"bytes that come back")
    later = utcnow() + timedelta(days=2)
    async with database.sessions() as s:
        started = await blobgc.db_now(s)
    await _blob(blob_store, b"bytes that come back")  # the writer's store (or finding them)
    report = await blobgc.collect(database.sessions, blob_store, now=later)
    assert report.deleted == [key] and await blob_store.stat(key) is None
    with pytest.raises(blobgc.BlobBeingDeleted):
        await _reference(database, repo, key, "back-1.0.tar.gz", started)
    async with database.sessions() as s:
        await blobgc.wait_deleted(s, [key], patience=5)
        started = await blobgc.db_now(s)
    await _blob(blob_store, b"bytes that come back")
    await _reference(database, repo, key, "back-1.0.tar.gz", started)
    assert await blob_store.stat(key) is not None
    # Referenced now: kept, however old.
    report = await blobgc.collect(database.sessions, blob_store, now=later)
    assert report.deleted == [] and await blob_store.stat(key) is not None


# ---- leases -----------------------------------------------------------------------------------


async def test_a_lease_has_one_holder_until_released_or_lapsed(database: Database) -> None:
    sessions = database.sessions
    assert await leases.acquire(sessions, "sweep", "a", 60)
    assert not await leases.acquire(sessions, "sweep", "b", 60)
    assert await leases.acquire(sessions, "sweep", "a", 60)  # renewal
    assert await leases.holder_of(sessions, "sweep") == "a"
    await leases.release(sessions, "sweep", "b")  # not b's to give up
    assert await leases.holder_of(sessions, "sweep") == "a"
    await leases.release(sessions, "sweep", "a")
    assert await leases.holder_of(sessions, "sweep") is None
    assert await leases.acquire(sessions, "sweep", "b", 0.2)
    await asyncio.sleep(0.4)  # b died: its lease lapses
    assert await leases.acquire(sessions, "sweep", "c", 60)
    # Many takers at once: exactly one wins.
    await leases.release(sessions, "sweep", "c")
    won = await asyncio.gather(*(leases.acquire(sessions, "sweep", f"t{i}", 60) for i in range(8)))
    assert sum(won) == 1
    async with leases.held(sessions, "other", ttl=60) as mine:
        assert mine
        async with leases.held(sessions, "other", ttl=60) as again:
            assert not again
    assert await leases.holder_of(sessions, "other") is None


# ---- retention ----------------------------------------------------------------------------------


async def _cache(
    db: Database, repo: int, filename: str, size: int, age: timedelta, key: str
) -> None:
    async with db.sessions() as s:
        await begin_write(s)
        s.add(
            ProxyFile(
                repository_id=repo,
                project="demo",
                filename=filename,
                sha256=sha256_of_key(key),
                size=size,
                blob_key=key,
                last_downloaded=utcnow() - age,
            )
        )
        await s.commit()


async def test_retention_removes_least_recently_used_first_and_keeps_pins_and_newest(
    database: Database,
) -> None:
    repo = await _proxy(database)
    writer = proxied.PageWriter()
    names = [f"demo-{v}-py3-none-any.whl" for v in ("1.0", "2.0", "3.0", "4.0")]
    for name in names:
        writer.add(
            SimpleFile(filename=name, url="https://x/" + name, sha256=None, size=None),
            listed_version(name),
        )
    head, blob = writer.finish({})
    await proxied.save(
        database.sessions,
        repo,
        "demo",
        data=head,
        files=blob,
        etag=None,
        last_modified=None,
        fetched_at=utcnow().timestamp(),
        missing=False,
    )
    keys = [blobgc_key(i) for i in range(5)]
    await _cache(database, repo, names[0], 100, timedelta(days=9), keys[0])  # oldest, pinned
    await _cache(database, repo, names[0] + ".metadata", 1, timedelta(days=9), keys[4])
    await _cache(database, repo, names[1], 100, timedelta(days=8), keys[1])
    await _cache(database, repo, names[2], 100, timedelta(days=1), keys[2])
    await _cache(database, repo, names[3], 100, timedelta(days=20), keys[3])  # newest version
    async with database.sessions() as s:
        await begin_write(s)
        await pin_proxy_files(s, repo, [names[0]])
        await s.commit()
    rule = Rule(max_bytes=250)
    async with database.sessions() as s:
        chosen = await plan(s, repo, rule)
    assert chosen.files == 5 and chosen.bytes == 401 and chosen.pinned_files == 2
    assert [f.filename for f in chosen.remove] == [names[1], names[2]]
    assert chosen.bytes_after == 201
    # A pin taken after the plan holds: prune checks again.
    async with database.sessions() as s:
        await begin_write(s)
        await pin_proxy_files(s, repo, [names[2]])
        await s.commit()
    async with database.sessions() as s:
        await begin_write(s)
        removed = await prune(s, chosen, blobs_free_after=utcnow())
        await s.commit()
    assert [f.filename for f in removed] == [names[1]]
    async with database.sessions() as s:
        left = set((await s.exec(select(ProxyFile.filename))).all())
    assert left == {names[0], names[0] + ".metadata", names[2], names[3]}
    assert set(await _orphans(database)) == {keys[1]}
    # Idle: only what is neither pinned nor newest.
    async with database.sessions() as s:
        idle = await plan(s, repo, Rule(max_idle=timedelta(days=2)))
    assert idle.remove == []


def blobgc_key(i: int) -> str:
    return blob_key_for(f"{i:064x}")


async def test_download_times_are_noted_in_memory_and_written_in_one_batch(
    database: Database,
) -> None:
    repo = await _proxy(database)
    await _cache(database, repo, "a-1.0.tar.gz", 1, timedelta(days=3), blobgc_key(1))
    await _cache(database, repo, "b-1.0.tar.gz", 1, timedelta(minutes=5), blobgc_key(2))
    stamps = DownloadStamps(database.sessions, every=3600)

    async def last(name: str) -> datetime:
        async with database.sessions() as s:
            row = (
                await s.exec(select(ProxyFile.last_downloaded).where(ProxyFile.filename == name))
            ).one()
            return row

    before_a, before_b = await last("a-1.0.tar.gz"), await last("b-1.0.tar.gz")
    for _ in range(100):  # a hundred downloads: no write yet
        stamps.note(repo, "a-1.0.tar.gz", before_a)
        stamps.note(repo, "b-1.0.tar.gz", before_b)  # stamped minutes ago: not noted
    assert await last("a-1.0.tar.gz") == before_a
    assert await stamps.flush() == 1
    assert utcnow() - await last("a-1.0.tar.gz") < timedelta(minutes=1)
    assert await last("b-1.0.tar.gz") == before_b
    assert await stamps.flush() == 0


async def test_periodic_sweeps_collect_garbage_at_most_every_so_often(
    database: Database, blob_store: BlobStore
) -> None:
    grace = timedelta(days=1)
    every = timedelta(hours=6)
    first = await maintenance.sweep(database.sessions, blob_store, grace=grace, collect_every=every)
    assert first.collection is not None
    second = await maintenance.sweep(
        database.sessions, blob_store, grace=grace, collect_every=every
    )
    assert second.collection is None  # collected a moment ago
    on_demand = await maintenance.sweep(database.sessions, blob_store, grace=grace)
    assert on_demand.collection is not None  # `wheelyard cache prune` always collects
    one = await maintenance.sweep(
        database.sessions, blob_store, grace=grace, repositories={"default/pypi"}
    )
    assert one.collection is None  # only some repositories: no store-wide collection
