"""Pre-fetch jobs asked through the API (`prefetch_jobs`): created by the process that runs
them, progress written as it goes, read by any replica that is polled.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import PrefetchJob, utcnow

SessionFactory = Callable[[], AsyncSession]
#: How often a running job renews its heartbeat (and writes its progress).
HEARTBEAT_EVERY = 2.0
#: How long a finished job is kept for polls.
KEEP_FINISHED = timedelta(days=7)
#: A running job whose heartbeat is older than this was abandoned (its process stopped).
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Progress:
    """Counts so far."""

    total: int = 0
    fetched: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0


async def create(sessions: SessionFactory, repository_id: int, created_by: str | None) -> str:
    """A new queued job for the repository; returns its id (random: ids are not guessable,
    though every read checks the caller's rights on the repository anyway)."""
    job_id = secrets.token_hex(16)
    async with sessions() as session:
        await begin_write(session)
        session.add(PrefetchJob(id=job_id, repository_id=repository_id, created_by=created_by))
        await session.commit()
    return job_id


async def report(
    sessions: SessionFactory,
    job_id: str,
    progress: Progress,
    *,
    status: str = "running",
    outcomes: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> None:
    """Write the job's progress and heartbeat; with `status="done"` its outcomes and end."""
    values: dict[str, Any] = {
        "status": status,
        "heartbeat": utcnow(),
        "total": progress.total,
        "fetched": progress.fetched,
        "cached": progress.cached,
        "failed": progress.failed,
        "skipped": progress.skipped,
    }
    if status == "done":
        values.update(finished_at=utcnow(), outcomes=outcomes or [], error=error)
    async with sessions() as session:
        await begin_write(session)
        await session.exec(
            update(PrefetchJob).where(col(PrefetchJob.id) == job_id).values(**values)
        )
        await session.commit()


async def find(session: AsyncSession, repository_id: int, job_id: str) -> PrefetchJob | None:
    """The job `job_id` of the repository, or None (a job of another repository is None)."""
    row = (
        await session.exec(
            select(PrefetchJob).where(
                PrefetchJob.id == job_id, PrefetchJob.repository_id == repository_id
            )
        )
    ).first()
    return row


async def purge(sessions: SessionFactory, older_than: datetime) -> int:
    """Delete jobs that ended before `older_than`; returns how many."""
    async with sessions() as session:
        await begin_write(session)
        result = await session.exec(
            delete(PrefetchJob).where(
                col(PrefetchJob.finished_at).is_not(None),
                col(PrefetchJob.finished_at) < older_than,
            )
        )
        await session.commit()
    return result.rowcount or 0


def document(job: PrefetchJob, now: datetime | None = None) -> dict[str, Any]:
    """The job as the API shows it; a running job without a recent heartbeat is `abandoned`
    (posting the lockfile again resumes: cached files are skipped)."""
    status = job.status
    if status != "done" and (now or utcnow()) - job.heartbeat > ABANDONED_AFTER:
        status = "abandoned"
    return {
        "id": job.id,
        "status": status,
        "created_by": job.created_by,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "total": job.total,
        "fetched": job.fetched,
        "cached": job.cached,
        "failed": job.failed,
        "skipped": job.skipped,
        "error": job.error,
        "outcomes": job.outcomes,
    }
