"""Garbage collection of blobs: bytes no record references are deleted after a grace period.

Blobs are shared and content-addressed; a record (a live `files` row, its PEP 658 metadata, a
`proxy_files` row) references one by key. A blob nothing references is left behind by a crash
between the blob write and the row's commit, by a deleted hosted file, or by a proxy file that
retention removed. `collect` finds such blobs, records them in `blob_orphans` with when they
may go (`delete_after`: the blob's last write plus the grace period, or later), and deletes
those that are due and still unreferenced.

Concurrent writers of the same bytes are the hazard: a writer may commit a record referencing
a blob just while it is deleted. The `blob_orphans` row orders the two:

- Deleting ("claiming") is one transaction: it marks the row `deleting_at` and re-checks that
  nothing references the blob, then commits; only then is the blob deleted, and the row
  removed afterwards.
- Every writer that commits a record referencing a blob calls `guard_references` in the same
  transaction, before its commit: it cancels a pending (unclaimed) deletion, and raises
  `BlobBeingDeleted` when the blob is claimed; the writer then rolls back, waits for the
  deletion to finish (`wait_deleted`), writes the bytes again and retries.
- The two transactions cannot miss each other: SQLite runs writers one at a time (BEGIN
  IMMEDIATE); on Postgres the claim takes an exclusive transaction-level advisory lock on the
  blob and writers a shared one, so a claim waits until every writer that got past its check
  has committed (and then sees its record), and a writer that starts after a claim sees it.

A blob written recently is never claimed whatever references it (its `delete_after` lies in
the future), which covers a write whose record is not committed yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import BlobOrphan, File, ProxyFile, utcnow
from wheelyard.shared.errors import BackendUnavailable
from wheelyard.shared.storage import BlobStore, ListedBlob, sha256_of_key

log = logging.getLogger(__name__)
SessionFactory = Callable[[], AsyncSession]
#: The default grace period: an unreferenced blob younger than this is kept.
DEFAULT_GRACE = timedelta(days=1)
#: How long a blob whose record just went away is kept at least: downloads that started
#: before finish streaming it.
DRAIN = timedelta(hours=1)
#: A claim older than this was left by a collector that died between claim and deletion.
STALE_CLAIM = timedelta(minutes=10)
#: Keys per query (bind-parameter limits of SQLite).
_BATCH = 300
#: Namespace of the Postgres advisory locks taken on blobs ("WY").
_LOCK_SPACE = 0x5759


class BlobBeingDeleted(BackendUnavailable):
    """A record was about to reference a blob that garbage collection is deleting right now.
    Writers that can, wait (`wait_deleted`), write the bytes again and retry; anyone else
    answers 503 so the client retries."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = sorted(keys)
        super().__init__(
            "Stored bytes of this file are being cleaned up right now; retry in a moment.",
            part="blobs",
        )


def _lock_id(key: str) -> int:
    return int(sha256_of_key(key)[:7], 16)


async def _lock(session: AsyncSession, keys: Iterable[str], *, exclusive: bool) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: writers are serialised already (BEGIN IMMEDIATE)
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    connection = await session.connection()
    for lock_id in sorted({_lock_id(k) for k in keys}):  # one order: no deadlock
        await connection.execute(text(f"SELECT {fn}(:a, :b)"), {"a": _LOCK_SPACE, "b": lock_id})


async def referenced_keys(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """Which of `keys` a record references: a live hosted file or its metadata, or a proxy
    file of any repository. (A deleted file's row keeps its key but no longer holds it.)"""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        for column in (File.blob_key, File.metadata_blob_key):
            rows = await session.exec(
                select(column).where(col(column).in_(batch), col(File.deleted_at).is_(None))
            )
            found.update(k for k in rows.all() if k is not None)
        rows = await session.exec(
            select(ProxyFile.blob_key).where(col(ProxyFile.blob_key).in_(batch))
        )
        found.update(rows.all())
    return found


async def guard_references(session: AsyncSession, keys: Iterable[str]) -> None:
    """Call in the write transaction that commits records referencing the blobs `keys`, before
    its commit: cancels their pending deletions. Raises `BlobBeingDeleted` when one is being
    deleted right now; the caller must then roll back, `wait_deleted`, write the bytes again
    and retry."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    await _lock(session, wanted, exclusive=False)
    await session.exec(
        delete(BlobOrphan).where(
            col(BlobOrphan.blob_key).in_(wanted), col(BlobOrphan.deleting_at).is_(None)
        )
    )
    claimed = (
        await session.exec(select(BlobOrphan.blob_key).where(col(BlobOrphan.blob_key).in_(wanted)))
    ).all()
    if claimed:
        raise BlobBeingDeleted(claimed)


async def wait_deleted(
    session: AsyncSession, keys: Iterable[str], *, patience: float = 30.0
) -> None:
    """Wait until no deletion of `keys` is in progress (ends `session`'s transaction);
    `BlobBeingDeleted` after `patience` seconds."""
    wanted = sorted(set(keys))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        await session.rollback()  # each look is a transaction of its own
        left = (
            await session.exec(
                select(BlobOrphan.blob_key).where(
                    col(BlobOrphan.blob_key).in_(wanted),
                    col(BlobOrphan.deleting_at).is_not(None),
                )
            )
        ).all()
        await session.rollback()
        if not left:
            return
        if loop.time() > deadline:
            raise BlobBeingDeleted(left)
        await asyncio.sleep(0.1)


async def orphan(session: AsyncSession, keys: Iterable[str], delete_after: datetime) -> int:
    """Note that records referencing `keys` went away (a file deleted, a proxy file pruned):
    those no record references any more are deleted once `delete_after` has passed (a
    download still streaming them finishes first). Returns how many were noted."""
    candidates = sorted(set(keys))
    if not candidates:
        return 0
    loose = [k for k in candidates if k not in await referenced_keys(session, candidates)]
    await _insert(session, [(k, delete_after) for k in loose])
    return len(loose)


async def _insert(session: AsyncSession, rows: list[tuple[str, datetime]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    for start in range(0, len(rows), _BATCH):
        values = [
            {"blob_key": k, "first_seen": now, "delete_after": after, "deleting_at": None}
            for k, after in rows[start : start + _BATCH]
        ]
        # An existing row wins: it is older, or being deleted.
        await session.exec(insert(BlobOrphan).values(values).on_conflict_do_nothing())


@dataclass
class Collection:
    """What one garbage collection found and did (or, dry, would do)."""

    blobs: int = 0  # blobs listed
    bytes: int = 0
    unreferenced: int = 0  # of which no record references
    unreferenced_bytes: int = 0
    deleted: list[str] = field(default_factory=list)  # keys deleted (due, dry: would be)
    deleted_bytes: int = 0
    pending: int = 0  # unreferenced, not due yet

    def as_dict(self) -> dict[str, int]:
        """The figures, for reports."""
        return {
            "blobs": self.blobs,
            "bytes": self.bytes,
            "unreferenced": self.unreferenced,
            "unreferenced_bytes": self.unreferenced_bytes,
            "deleted": len(self.deleted),
            "deleted_bytes": self.deleted_bytes,
            "pending": self.pending,
        }


async def collect(
    sessions: SessionFactory,
    blobs: BlobStore,
    *,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Collection:
    """List every blob, note the unreferenced ones and delete those due (see the module
    docstring). With `dry_run` nothing is written or deleted: the result says what would be.
    Run it under the garbage-collection lease (one collector at a time)."""
    now = now or utcnow()
    report = Collection()
    sizes: dict[str, int] = {}
    batch: list[ListedBlob] = []
    async for blob in blobs.list_blobs():
        report.blobs += 1
        report.bytes += blob.size
        batch.append(blob)
        if len(batch) >= _BATCH:
            await _mark(sessions, batch, grace, now, dry_run, report, sizes)
            batch = []
    if batch:
        await _mark(sessions, batch, grace, now, dry_run, report, sizes)
    if dry_run:
        return report
    async with sessions() as session:
        due = (
            await session.exec(
                select(BlobOrphan.blob_key).where(
                    col(BlobOrphan.delete_after) <= now,
                    or_(
                        col(BlobOrphan.deleting_at).is_(None),
                        col(BlobOrphan.deleting_at) < now - STALE_CLAIM,
                    ),
                )
            )
        ).all()
    for key in due:
        if await _delete_one(sessions, blobs, key, now):
            report.deleted.append(key)
            report.deleted_bytes += sizes.get(key, 0)
    report.pending = max(0, report.unreferenced - len(report.deleted))
    return report


async def _mark(
    sessions: SessionFactory,
    batch: list[ListedBlob],
    grace: timedelta,
    now: datetime,
    dry_run: bool,
    report: Collection,
    sizes: dict[str, int],
) -> None:
    keys = [b.key for b in batch]
    async with sessions() as session:
        if not dry_run:
            await begin_write(session)
        used = await referenced_keys(session, keys)
        loose = [b for b in batch if b.key not in used]
        known = dict(
            (
                await session.exec(
                    select(BlobOrphan.blob_key, BlobOrphan.delete_after).where(
                        col(BlobOrphan.blob_key).in_(keys)
                    )
                )
            ).all()
        )
        for blob in loose:
            report.unreferenced += 1
            report.unreferenced_bytes += blob.size
            sizes[blob.key] = blob.size
            after = known.get(blob.key, blob.modified + grace)
            if dry_run and after <= now:
                report.deleted.append(blob.key)
                report.deleted_bytes += blob.size
        if dry_run:
            report.pending = report.unreferenced - len(report.deleted)
            return
        new = [(b.key, b.modified + grace) for b in loose if b.key not in known]
        await _insert(session, new)
        stale = [k for k in known if k in used]
        if stale:  # referenced again (by a writer that did not need to say so): keep it
            await session.exec(
                delete(BlobOrphan).where(
                    col(BlobOrphan.blob_key).in_(stale), col(BlobOrphan.deleting_at).is_(None)
                )
            )
        await session.commit()


async def _delete_one(sessions: SessionFactory, blobs: BlobStore, key: str, now: datetime) -> bool:
    async with sessions() as session:
        await begin_write(session)
        await _lock(session, [key], exclusive=True)
        claimed = await session.exec(
            update(BlobOrphan)
            .where(
                col(BlobOrphan.blob_key) == key,
                col(BlobOrphan.delete_after) <= now,
                or_(
                    col(BlobOrphan.deleting_at).is_(None),
                    col(BlobOrphan.deleting_at) < now - STALE_CLAIM,
                ),
            )
            .values(deleting_at=utcnow())
        )
        if claimed.rowcount != 1:
            await session.rollback()  # a writer cancelled it, or another collector has it
            return False
        if await referenced_keys(session, [key]):
            await session.exec(delete(BlobOrphan).where(col(BlobOrphan.blob_key) == key))
            await session.commit()
            return False
        await session.commit()
    await blobs.delete(key)
    async with sessions() as session:
        await begin_write(session)
        await session.exec(delete(BlobOrphan).where(col(BlobOrphan.blob_key) == key))
        await session.commit()
    log.info("garbage collection deleted blob %s", key)
    return True
