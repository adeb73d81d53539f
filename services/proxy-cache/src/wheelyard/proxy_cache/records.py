"""Which files a proxy repository holds: the `proxy_files` table.

The blob store is shared and content-addressed, so a blob's existence says nothing about who
may read it (issue 9, "Private bytes"): an upstream page that merely lists the sha256 of a
private or deleted file must not make the proxy serve it. A proxy repository therefore serves
stored bytes only for a file it has a record of, and records a file only after its own
upstream delivered bytes that matched the listed sha256 and size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import ProxyFile, utcnow
from wheelyard.shared.domain import blobgc

SessionFactory = Callable[[], AsyncSession]
#: `last_downloaded` is a day-scale figure (retention): written at most this often per file.
STAMP_EVERY = timedelta(hours=1)
#: Files recorded per write transaction by `Recorder` at most.
MAX_BATCH = 200
#: Seconds `Recorder` waits for more files before writing a batch.
GATHER = 0.02
#: Rows per INSERT (bind-parameter limits of SQLite), names per IN list.
_INSERT_BATCH = 100
_FIND_BATCH = 300


@dataclass(frozen=True)
class Held:
    """A file the repository fetched and verified."""

    project: str
    sha256: str
    size: int
    blob_key: str
    last_downloaded: datetime

    def size_estimate(self) -> int:
        """Bytes this record takes in memory, roughly (for bounded caches)."""
        return 300 + len(self.project) + len(self.blob_key)


#: A `Held`'s columns, in its fields' order.
_HELD_COLUMNS = (
    ProxyFile.project,
    ProxyFile.sha256,
    ProxyFile.size,
    ProxyFile.blob_key,
    ProxyFile.last_downloaded,
)
# The lookups' statements, built once (see `wheelyard.shared.domain.proxied`: building one
# costs more CPU than running it).
_FIND = select(*_HELD_COLUMNS).where(  # type: ignore[call-overload]
    col(ProxyFile.repository_id) == bindparam("repository_id"),
    col(ProxyFile.filename) == bindparam("filename"),
)
_FIND_MANY = select(ProxyFile.filename, *_HELD_COLUMNS).where(  # type: ignore[call-overload]
    col(ProxyFile.repository_id) == bindparam("repository_id"),
    col(ProxyFile.filename).in_(bindparam("filenames", expanding=True)),
)


async def find(session: AsyncSession, repository_id: int, filename: str) -> Held | None:
    """The record of `filename` (with `.metadata` for PEP 658 metadata) in the repository."""
    params = {"repository_id": repository_id, "filename": filename}
    row = (await session.exec(_FIND, params=params)).first()
    return Held(*row) if row is not None else None


@dataclass(frozen=True)
class Verified:
    """A file whose bytes the repository's own upstream delivered, matching the listed sha256
    and size, and that are stored under `blob_key`: what `record` writes.

    `write_started` is `write_clock()` taken before the bytes were stored or found stored."""

    repository_id: int
    project: str
    filename: str
    sha256: str
    size: int
    blob_key: str
    upload_time: datetime | None
    write_started: datetime


async def record(sessions: SessionFactory, file: Verified) -> None:
    """Remember that the repository fetched and verified `file`. A record made meanwhile
    (another replica) is kept, unless it names other bytes (the upstream replaced the file;
    the new bytes were verified just now, so they win).

    Raises `blobgc.BlobBeingDeleted` (recording nothing) when garbage collection is deleting
    the blob, or deleted it since: wait for it (`wait_deleted`), store the bytes again, retry."""
    (error,) = await record_many(sessions, [file])
    if error is not None:
        raise error


async def record_many(
    sessions: SessionFactory, files: list[Verified]
) -> list[blobgc.BlobBeingDeleted | None]:
    """`record` for many files in one write transaction (a retry without the files whose
    blobs garbage collection is deleting). Returns, per file, None when it is recorded, or
    the `BlobBeingDeleted` its writer must handle as `record` describes; other errors (the
    database is down) are raised, and then none of them is recorded."""
    results: list[blobgc.BlobBeingDeleted | None] = [None] * len(files)
    todo = list(range(len(files)))
    while todo:
        try:
            replaced = await _record_batch(sessions, [files[i] for i in todo])
        except blobgc.BlobBeingDeleted as exc:
            hit = set(exc.keys)
            for i in todo:
                if files[i].blob_key in hit:
                    results[i] = blobgc.BlobBeingDeleted([files[i].blob_key])
            left = [i for i in todo if files[i].blob_key not in hit]
            if len(left) == len(todo):
                raise  # a key none of these files has: nothing left to retry without
            todo = left
            continue
        for blob_key in replaced:
            await _orphaned(sessions, blob_key)
        break
    return results


async def _record_batch(sessions: SessionFactory, files: list[Verified]) -> list[str]:
    """One transaction recording `files`; returns the blob keys of replaced records."""
    now = utcnow()
    # One record per (repository, filename): the later of two verified fetches wins.
    latest = {(f.repository_id, f.filename): f for f in files}
    replaced: list[str] = []
    async with sessions() as session:
        await begin_write(session)
        existing = await _find_many(session, list(latest))
        fresh = [
            f
            for key, f in latest.items()
            if key not in existing or existing[key].sha256 != f.sha256
        ]
        if fresh:
            # The earliest write start of the batch: a deletion after it counts for every
            # file (at worst a writer stores its bytes once more).
            since = min(f.write_started for f in fresh)
            try:
                await blobgc.guard_references(session, [f.blob_key for f in fresh], since)
            except blobgc.BlobBeingDeleted:
                await session.rollback()
                raise
        rows = []
        for key, f in latest.items():
            held = existing.get(key)
            if held is None:
                rows.append(
                    {
                        "repository_id": f.repository_id,
                        "project": f.project,
                        "filename": f.filename,
                        "sha256": f.sha256,
                        "size": f.size,
                        "blob_key": f.blob_key,
                        "upload_time": f.upload_time,
                        "first_seen": now,
                        "last_downloaded": now,
                    }
                )
            elif held.sha256 != f.sha256:
                await session.exec(
                    update(ProxyFile)
                    .where(
                        col(ProxyFile.repository_id) == f.repository_id,
                        col(ProxyFile.filename) == f.filename,
                    )
                    .values(
                        sha256=f.sha256, size=f.size, blob_key=f.blob_key, upload_time=f.upload_time
                    )
                )
                if held.blob_key != f.blob_key:
                    replaced.append(held.blob_key)
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        for start in range(0, len(rows), _INSERT_BATCH):
            # Recorded concurrently (another replica, past SQLite's lock only on Postgres):
            # the same verified bytes, kept.
            # (The rows are parameters, not part of the statement: see `proxied._insert_seen`.)
            await session.exec(
                insert(ProxyFile.__table__).on_conflict_do_nothing(  # type: ignore[attr-defined]
                    index_elements=["repository_id", "filename"]
                ),
                params=rows[start : start + _INSERT_BATCH],
            )
        await session.commit()
    return replaced


async def _find_many(
    session: AsyncSession, wanted: list[tuple[int, str]]
) -> dict[tuple[int, str], Held]:
    """`find` for many (repository, filename) pairs, in few queries."""
    by_repository: dict[int, list[str]] = {}
    for repository_id, filename in wanted:
        by_repository.setdefault(repository_id, []).append(filename)
    found: dict[tuple[int, str], Held] = {}
    for repository_id, filenames in by_repository.items():
        for start in range(0, len(filenames), _FIND_BATCH):
            batch = filenames[start : start + _FIND_BATCH]
            params = {"repository_id": repository_id, "filenames": batch}
            rows = await session.exec(_FIND_MANY, params=params)
            for filename, *rest in rows.all():
                found[(repository_id, filename)] = Held(*rest)
    return found


class Recorder:
    """Writes the records of verified files together: a file handed in while a batch is being
    written goes into the next one, so a burst of cold files (an installer's parallel
    downloads) costs a few write transactions instead of one each, and writers of this
    process do not queue one by one for SQLite's lock. One per process."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self._queue: list[tuple[Verified, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def record(self, file: Verified) -> None:
        """`record(sessions, file)`, written with the files handed in around the same time;
        returns once the record is committed, raises as `record` does."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A caller that went away (cancelled) never reads the outcome: do not warn about it.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.append((file, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="proxy-file-records")
        await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                # Files of a burst are verified a few milliseconds apart: waiting a moment
                # lets one transaction take them together (a burst of 102 cold `.metadata`
                # files was written in 62 transactions without the wait, each costing a few
                # milliseconds of CPU). Their clients already have every byte.
                await asyncio.sleep(GATHER)
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    results = await record_many(self.sessions, [file for file, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), error in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
        finally:
            # Cancelled (shutdown): whoever still waits is told, not left hanging.
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()

    async def aclose(self) -> None:
        """Let the batch being written finish (shutdown), at most a few seconds."""
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=5)


async def _orphaned(sessions: SessionFactory, blob_key: str) -> None:
    """The replaced bytes of a file: garbage collection's, once nothing references them."""
    async with sessions() as session:
        await begin_write(session)
        await blobgc.orphan(session, [blob_key], utcnow() + blobgc.DRAIN)
        await session.commit()


async def wait_deleted(sessions: SessionFactory, blob_key: str) -> None:
    """Wait until garbage collection has finished deleting `blob_key` (see `record`)."""
    async with sessions() as session:
        await blobgc.wait_deleted(session, [blob_key])


async def write_clock(sessions: SessionFactory) -> datetime:
    """The clock `record` compares `write_started` on (the database's)."""
    async with sessions() as session:
        return await blobgc.db_now(session)
