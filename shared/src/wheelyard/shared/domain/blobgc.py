"""Garbage collection of blobs: bytes no record references are deleted after a grace period.

Blobs are shared and content-addressed; a record (a live `files` row, its PEP 658 metadata, a
`proxy_files` row) references one by key. A blob nothing references is left behind by a crash
between the blob write and the row's commit, by a deleted hosted file, or by a proxy file that
retention removed. `collect` lists the store, notes such blobs in `blob_orphans` and deletes
those whose grace period (since their last write) and `delete_after` have passed.

Writers of the same bytes are the hazard: a writer stores a blob (or finds it stored), then
commits a record referencing it; a collector must never delete the bytes in between. The
`blob_orphans` row of the blob orders the two:

- Deleting is a claim, then the deletion, then a note: the claiming transaction sets
  `deleting_at` after re-checking that nothing references the blob; the blob is deleted; then
  `deleted_at` is set (the row is kept a day).
- Every writer notes the time it started storing (or looking for) the bytes (`write_started`),
  and calls `guard_references` in the transaction that commits its record. That cancels a
  pending deletion, and raises `BlobBeingDeleted` when a deletion is under way or finished
  after the write started (so it may have removed the writer's bytes): the writer rolls back,
  waits for it (`wait_deleted`), stores the bytes again and retries.
- The claim and the writer's transaction cannot miss each other: SQLite runs writers one at a
  time (BEGIN IMMEDIATE); on Postgres the claim takes an exclusive transaction-level advisory
  lock on the blob and writers a shared one, so a claim waits for every writer past its guard
  to commit (and then sees its record), and a writer that comes later sees the claim.
- Times compared across processes come from one clock: the database's (`db_now`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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
#: The default grace period: an unreferenced blob written more recently is kept.
DEFAULT_GRACE = timedelta(days=1)
#: How long a blob whose record just went away is kept at least: downloads that started
#: before finish streaming it.
DRAIN = timedelta(hours=1)
#: A claim older than this was left by a collector that died between claim and deletion.
STALE_CLAIM = timedelta(minutes=10)
#: How long the row of a deleted blob is kept (longer than any write takes to commit).
KEEP_DELETED = timedelta(days=1)
#: Keys per query (bind-parameter limits of SQLite).
_BATCH = 300
#: Namespace of the Postgres advisory locks taken on blobs ("WY").
_LOCK_SPACE = 0x5759


class BlobBeingDeleted(BackendUnavailable):
    """A record was about to reference a blob that garbage collection is deleting, or deleted
    after the writer stored it. Writers that can, wait (`wait_deleted`), store the bytes again
    and retry; anyone else answers 503 so the client retries."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = sorted(keys)
        super().__init__(
            "Stored bytes of this file are being cleaned up right now; retry in a moment.",
            part="blobs",
        )


async def db_now(session: AsyncSession) -> datetime:
    """The database's clock (Postgres), or this host's (SQLite: every process is on it): the
    one clock that writers' and collectors' times are compared on."""
    if session.get_bind().dialect.name == "postgresql":
        inside = session.in_transaction()
        connection = await session.connection()
        value = (await connection.execute(text("SELECT clock_timestamp()"))).scalar_one()
        if not inside:
            # Asked outside a transaction (before a long blob write): hold no connection.
            await session.commit()
        return value.astimezone(UTC)
    return utcnow()


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
    file of any repository. (A deleted file's row keeps its key but no longer holds it.)
    Every table that references blobs must be asked here, or its bytes are collected."""
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


async def guard_references(
    session: AsyncSession, keys: Iterable[str], write_started: datetime | None
) -> None:
    """Call in the write transaction that commits records referencing the blobs `keys`, before
    its commit; `write_started` is `db_now` taken before the bytes were stored (or found
    stored; None: unknown, any deletion recorded counts). Cancels pending deletions of the
    blobs; raises `BlobBeingDeleted` when one is being deleted, or was deleted after
    `write_started`: then roll back, `wait_deleted`, store the bytes again (with a new
    `write_started`) and retry."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    await _lock(session, wanted, exclusive=False)
    await session.exec(
        delete(BlobOrphan).where(
            col(BlobOrphan.blob_key).in_(wanted), col(BlobOrphan.deleting_at).is_(None)
        )
    )
    rows = (
        await session.exec(
            select(BlobOrphan.blob_key, BlobOrphan.deleted_at).where(
                col(BlobOrphan.blob_key).in_(wanted)
            )
        )
    ).all()
    hit = [
        key
        for key, deleted in rows
        if deleted is None or write_started is None or deleted >= write_started
    ]
    if hit:
        raise BlobBeingDeleted(hit)


async def wait_deleted(
    session: AsyncSession, keys: Iterable[str], *, patience: float = 30.0
) -> None:
    """Wait until no deletion of `keys` is under way (ends `session`'s transaction);
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
                    col(BlobOrphan.deleted_at).is_(None),
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
    those no record references any more are deleted once the grace period since their last
    write and `delete_after` have passed (a download still streaming them finishes first).
    Returns how many were noted."""
    candidates = sorted(set(keys))
    if not candidates:
        return 0
    used = await referenced_keys(session, candidates)
    loose = [k for k in candidates if k not in used]
    await _insert(session, [(k, delete_after) for k in loose])
    return len(loose)


async def _insert(session: AsyncSession, rows: list[tuple[str, datetime]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    for start in range(0, len(rows), _BATCH):
        values = [
            {"blob_key": k, "first_seen": now, "delete_after": after}
            for k, after in rows[start : start + _BATCH]
        ]
        # An existing row wins: it is older, or being (or was) deleted.
        await session.exec(insert(BlobOrphan).values(values).on_conflict_do_nothing())


@dataclass
class Collection:
    """What one garbage collection found and did (or, dry, would do)."""

    blobs: int = 0  # blobs listed
    bytes: int = 0
    unreferenced: int = 0  # of which no record references
    unreferenced_bytes: int = 0
    deleted: list[str] = field(default_factory=list)  # keys deleted (dry: due)
    deleted_bytes: int = 0
    due: dict[str, int] = field(default_factory=dict)  # key -> size, due for deletion

    @property
    def pending(self) -> int:
        """Unreferenced blobs kept for now (grace period, drain time, or in use again)."""
        return self.unreferenced - len(self.deleted)

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
    docstring). With `dry_run` nothing is written or deleted: `deleted` says what would be.
    Run it under the sweep's lease (one collector at a time). `now` (tests) moves the clock
    that decides what is due."""
    now = now or utcnow()
    report = Collection()
    batch: list[ListedBlob] = []
    async for blob in blobs.list_blobs():
        report.blobs += 1
        report.bytes += blob.size
        batch.append(blob)
        if len(batch) >= _BATCH:
            await _mark(sessions, batch, grace, now, dry_run, report)
            batch = []
    if batch:
        await _mark(sessions, batch, grace, now, dry_run, report)
    if dry_run:
        report.deleted = sorted(report.due)
        report.deleted_bytes = sum(report.due.values())
        return report
    async with sessions() as session:
        stale = (
            await session.exec(
                select(BlobOrphan.blob_key).where(
                    col(BlobOrphan.deleted_at).is_(None),
                    col(BlobOrphan.deleting_at) < now - STALE_CLAIM,
                )
            )
        ).all()
    for key in sorted(set(report.due) | set(stale)):
        if await _delete_one(sessions, blobs, key, now) and key in report.due:
            report.deleted.append(key)
            report.deleted_bytes += report.due[key]
    async with sessions() as session:
        await begin_write(session)
        cutoff = await db_now(session) - KEEP_DELETED
        await session.exec(delete(BlobOrphan).where(col(BlobOrphan.deleted_at) < cutoff))
        await session.commit()
    return report


async def _mark(
    sessions: SessionFactory,
    batch: list[ListedBlob],
    grace: timedelta,
    now: datetime,
    dry_run: bool,
    report: Collection,
) -> None:
    keys = [b.key for b in batch]
    async with sessions() as session:
        if not dry_run:
            await begin_write(session)
        used = await referenced_keys(session, keys)
        known = {
            key: (after, deleting, deleted)
            for key, after, deleting, deleted in (
                await session.exec(
                    select(
                        BlobOrphan.blob_key,
                        BlobOrphan.delete_after,
                        BlobOrphan.deleting_at,
                        BlobOrphan.deleted_at,
                    ).where(col(BlobOrphan.blob_key).in_(keys))
                )
            ).all()
        }
        new: list[tuple[str, datetime]] = []
        revived: list[str] = []
        for blob in batch:
            if blob.key in used:
                continue
            report.unreferenced += 1
            report.unreferenced_bytes += blob.size
            row = known.get(blob.key)
            if row is None:
                new.append((blob.key, blob.modified))
                after = blob.modified
            elif row[2] is not None:  # deleted, yet listed: stored again since
                revived.append(blob.key)
                continue
            elif row[1] is not None:  # a deletion under way
                continue
            else:
                after = row[0]
            if max(after, blob.modified + grace) <= now:
                report.due[blob.key] = blob.size
        if dry_run:
            return
        await _insert(session, new)
        if revived:
            await session.exec(
                update(BlobOrphan)
                .where(col(BlobOrphan.blob_key).in_(revived))
                .values(
                    first_seen=utcnow(),
                    delete_after=utcnow() + DRAIN,
                    deleting_at=None,
                    deleted_at=None,
                )
            )
        back = [k for k, row in known.items() if k in used and row[1] is None]
        if back:  # referenced again (by a writer that did not need to say so): keep it
            await session.exec(
                delete(BlobOrphan).where(
                    col(BlobOrphan.blob_key).in_(back), col(BlobOrphan.deleting_at).is_(None)
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
                col(BlobOrphan.deleted_at).is_(None),
                or_(
                    col(BlobOrphan.deleting_at).is_(None),
                    col(BlobOrphan.deleting_at) < now - STALE_CLAIM,
                ),
            )
            .values(deleting_at=await db_now(session))
        )
        if claimed.rowcount != 1:
            await session.rollback()  # a writer cancelled it, or another collector has it
            return False
        if await referenced_keys(session, [key]):
            await session.exec(delete(BlobOrphan).where(col(BlobOrphan.blob_key) == key))
            await session.commit()
            return False
        await session.commit()
    try:
        await blobs.delete(key)
    finally:
        # Also when the deletion failed midway: the bytes may be gone, and a writer must then
        # store them again; if they are still there, the next collection finds them listed
        # and makes the row pending again.
        async with sessions() as session:
            await begin_write(session)
            await session.exec(
                update(BlobOrphan)
                .where(col(BlobOrphan.blob_key) == key)
                .values(deleted_at=await db_now(session))
            )
            await session.commit()
    log.info("garbage collection deleted blob %s", key)
    return True
