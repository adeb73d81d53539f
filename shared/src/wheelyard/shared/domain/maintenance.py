"""The storage sweep: retention of every proxy repository's cache, then garbage collection of
unreferenced blobs, on one process at a time; and the storage report of what it would do.

Every proxy-cache process runs `sweep` periodically (WHEELYARD_RETENTION_INTERVAL), and
`wheelyard cache prune` runs it on demand; the `maintenance` lease (`domain/leases.py`) lets
one of them work at a time, whatever the mode (embedded, split, several replicas), and the
others skip the round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import File, ProxyPin, utcnow
from wheelyard.shared.domain import blobgc, leases, retention
from wheelyard.shared.domain.repositories import RepositoryView, list_repositories
from wheelyard.shared.storage import BlobStore

SessionFactory = Callable[[], AsyncSession]
#: The lease every sweep takes.
LEASE = "maintenance"
#: A lease never given up, taken for `collect_every` by the sweep that collects garbage: the
#: next periodic collection waits until it lapses (listing the whole store costs).
GC_SCHEDULE = "gc-schedule"


class SweepBusy(Exception):
    """Another process is sweeping right now."""

    def __init__(self, holder: str | None) -> None:
        self.holder = holder
        super().__init__(f"another sweep is running ({holder or 'holder unknown'})")


@dataclass
class RepositorySweep:
    """Retention in one proxy repository: what it found, removed (or, dry, would remove)."""

    repository: str
    plan: retention.Plan
    removed: list[retention.Cached] = field(default_factory=list)

    def as_dict(self, *, dry_run: bool) -> dict[str, Any]:
        """The figures, for reports."""
        done = self.plan.remove if dry_run else self.removed
        return {
            "repository": self.repository,
            "cache_max_bytes": self.plan.rule.max_bytes,
            "cache_max_idle_seconds": (
                int(self.plan.rule.max_idle.total_seconds()) if self.plan.rule.max_idle else None
            ),
            **self.plan.as_dict(),
            "removed_files": len(done),
            "removed_bytes": sum(f.size for f in done),
            "removed": [f.filename for f in done],
        }


@dataclass
class Sweep:
    """One sweep (or dry run): per repository, then garbage collection."""

    dry_run: bool
    repositories: list[RepositorySweep] = field(default_factory=list)
    collection: blobgc.Collection | None = None

    def as_dict(self) -> dict[str, Any]:
        """The figures, for reports."""
        return {
            "dry_run": self.dry_run,
            "repositories": [r.as_dict(dry_run=self.dry_run) for r in self.repositories],
            "garbage": self.collection.as_dict() if self.collection else None,
        }


def _proxies(views: list[RepositoryView], only: set[str] | None) -> list[RepositoryView]:
    return [v for v in views if v.type == "proxy" and (only is None or v.path in only)]


async def retention_round(
    sessions: SessionFactory,
    views: list[RepositoryView],
    *,
    dry_run: bool,
    report: Sweep,
) -> None:
    """Plan (and unless `dry_run`, prune) each of the proxy repositories `views`."""
    for view in views:
        rule = retention.Rule.of(view.settings)
        async with sessions() as session:
            chosen = await retention.plan(session, view.id, rule)
        entry = RepositorySweep(view.path, chosen)
        if not dry_run and chosen.remove:
            async with sessions() as session:
                await begin_write(session)
                entry.removed = await retention.prune(
                    session, chosen, blobs_free_after=utcnow() + blobgc.DRAIN
                )
                await session.commit()
        report.repositories.append(entry)


async def sweep(
    sessions: SessionFactory,
    blobs: BlobStore,
    *,
    grace: timedelta,
    repositories: set[str] | None = None,
    dry_run: bool = False,
    collect: bool = True,
    collect_every: timedelta | None = None,
) -> Sweep:
    """Apply retention to every proxy repository (or those `repositories` names, as
    `storage/name`), then collect unreferenced blobs (unless `collect` is False or only some
    repositories were named; with `collect_every`, only when no sweep collected within that
    time). Raises `SweepBusy` when another process is sweeping; a dry run writes nothing and
    needs no lease."""
    report = Sweep(dry_run=dry_run)
    async with sessions() as session:
        views = _proxies(await list_repositories(session), repositories)
    if dry_run:
        await retention_round(sessions, views, dry_run=True, report=report)
        if collect and repositories is None:
            report.collection = await blobgc.collect(sessions, blobs, grace=grace, dry_run=True)
        return report
    async with leases.held(sessions, LEASE, ttl=300) as mine:
        if not mine:
            raise SweepBusy(await leases.holder_of(sessions, LEASE))
        await retention_round(sessions, views, dry_run=False, report=report)
        due = collect and repositories is None
        if due and collect_every is not None:
            due = await leases.acquire(
                sessions, GC_SCHEDULE, leases.holder_id(), collect_every.total_seconds()
            )
        if due:
            report.collection = await blobgc.collect(sessions, blobs, grace=grace)
    return report


async def storage_report(
    sessions: SessionFactory, blobs: BlobStore, *, grace: timedelta, blobs_too: bool = True
) -> dict[str, Any]:
    """Bytes and files per repository (hosted: live files; proxy: cached, of which pinned, and
    how many pins it has, cached or not),
    and what the next sweep would remove (retention per proxy repository, and with
    `blobs_too` the blob store's totals and unreferenced blobs). Reads only."""
    async with sessions() as session:
        views = await list_repositories(session)
        hosted = {
            repo: (int(files), int(size or 0))
            for repo, files, size in (
                await session.exec(
                    select(File.repository_id, func.count(col(File.id)), func.sum(col(File.size)))
                    .where(col(File.deleted_at).is_(None))
                    .group_by(col(File.repository_id))
                )
            ).all()
        }
        pins = {
            repo: int(count)
            for repo, count in (
                await session.exec(
                    select(ProxyPin.repository_id, func.count()).group_by(
                        col(ProxyPin.repository_id)
                    )
                )
            ).all()
        }
    dry = await sweep(sessions, blobs, grace=grace, dry_run=True, collect=blobs_too)
    plans = {r.repository: r for r in dry.repositories}
    out = []
    for view in views:
        entry: dict[str, Any] = {"repository": view.path, "type": view.type}
        if view.type == "hosted":
            files, size = hosted.get(view.id, (0, 0))
            entry.update(files=files, bytes=size)
        elif view.type == "proxy" and view.path in plans:
            swept = plans[view.path].as_dict(dry_run=True)
            entry.update(
                files=swept["files"],
                bytes=swept["bytes"],
                cached_files=swept["files"],
                cached_bytes=swept["bytes"],
                pinned_files=swept["pinned_files"],
                pinned_bytes=swept["pinned_bytes"],
                pins=pins.get(view.id, 0),
                cache_max_bytes=swept["cache_max_bytes"],
                cache_max_idle_seconds=swept["cache_max_idle_seconds"],
                next_sweep={
                    "remove_files": swept["removed_files"],
                    "remove_bytes": swept["removed_bytes"],
                    "remove": swept["removed"][:100],
                },
            )
        else:
            entry.update(files=0, bytes=0)
        out.append(entry)
    garbage = dry.collection.as_dict() if dry.collection else None
    return {
        "repositories": out,
        "blobs": garbage,
        "gc_grace_seconds": int(grace.total_seconds()),
    }
