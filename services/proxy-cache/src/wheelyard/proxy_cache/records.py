"""Which files a proxy repository holds: the `proxy_files` table.

The blob store is shared and content-addressed, so a blob's existence says nothing about who
may read it (issue 9, "Private bytes"): an upstream page that merely lists the sha256 of a
private or deleted file must not make the proxy serve it. A proxy repository therefore serves
stored bytes only for a file it has a record of, and records a file only after its own
upstream delivered bytes that matched the listed sha256 and size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import ProxyFile, utcnow
from wheelyard.shared.domain import blobgc

SessionFactory = Callable[[], AsyncSession]
#: `last_downloaded` is a day-scale figure (retention): written at most this often per file.
STAMP_EVERY = timedelta(hours=1)


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


async def find(session: AsyncSession, repository_id: int, filename: str) -> Held | None:
    """The record of `filename` (with `.metadata` for PEP 658 metadata) in the repository."""
    row = (
        await session.exec(
            select(  # type: ignore[call-overload]
                ProxyFile.project,
                ProxyFile.sha256,
                ProxyFile.size,
                ProxyFile.blob_key,
                ProxyFile.last_downloaded,
            ).where(ProxyFile.repository_id == repository_id, ProxyFile.filename == filename)
        )
    ).first()
    return Held(*row) if row is not None else None


async def record(
    sessions: SessionFactory,
    *,
    repository_id: int,
    project: str,
    filename: str,
    sha256: str,
    size: int,
    blob_key: str,
    upload_time: datetime | None,
    write_started: datetime,
) -> None:
    """Remember that the repository fetched and verified `filename`. A record made meanwhile
    (another replica) is kept, unless it names other bytes (the upstream replaced the file;
    the new bytes were verified just now, so they win).

    `write_started` is `write_clock()` taken before the bytes were stored or found stored.
    Raises `blobgc.BlobBeingDeleted` (recording nothing) when garbage collection is deleting
    the blob, or deleted it since: wait for it (`wait_deleted`), store the bytes again, retry."""
    now = utcnow()
    async with sessions() as session:
        await begin_write(session)
        existing = await find(session, repository_id, filename)
        if existing is None or existing.sha256 != sha256:
            try:
                await blobgc.guard_references(session, [blob_key], write_started)
            except blobgc.BlobBeingDeleted:
                await session.rollback()
                raise
        if existing is not None:
            if existing.sha256 != sha256:
                await session.exec(
                    update(ProxyFile)
                    .where(
                        col(ProxyFile.repository_id) == repository_id,
                        col(ProxyFile.filename) == filename,
                    )
                    .values(sha256=sha256, size=size, blob_key=blob_key, upload_time=upload_time)
                )
                await session.commit()
                if existing.blob_key != blob_key:
                    await _orphaned(sessions, existing.blob_key)
            return
        session.add(
            ProxyFile(
                repository_id=repository_id,
                project=project,
                filename=filename,
                sha256=sha256,
                size=size,
                blob_key=blob_key,
                upload_time=upload_time,
                first_seen=now,
                last_downloaded=now,
            )
        )
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()  # recorded concurrently: the same verified bytes


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
