"""Persisted proxy pages: the `proxy_pages` table, the truth behind every cached proxy page.

Written by the proxy-cache service; read by it and by the web interface (what a proxy
repository holds, how fresh), which can also expire an entry, so both do it the same way.

A row holds the parsed, sanitised page (`data`, never upstream markup), the validators to
revalidate it with (ETag, Last-Modified), when it was last confirmed by the upstream, and
whether the upstream said 404 (a negative entry). Rows survive restarts, so pages (and through
them cached files) are still served when the upstream is gone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import ProxyPage
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile

SessionFactory = Callable[[], AsyncSession]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StoredPage:
    """One row of `proxy_pages`, detached. `version` is a digest of `data`."""

    project: str
    data: dict[str, Any]
    etag: str | None
    last_modified: str | None
    fetched_at: float  # epoch seconds
    missing: bool

    @property
    def version(self) -> str:
        return data_version(self.data)

    @property
    def usable(self) -> bool:
        """True when the row holds a page that can be served (stale or not)."""
        return not self.missing and "files" in self.data


def data_version(data: dict[str, Any]) -> str:
    """A short digest of a page's data: its identity in caches and ETags."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2s(text.encode(), digest_size=8).hexdigest()


def page_to_data(page: ProjectPage, *, serial: int | None, source: int) -> dict[str, Any]:
    """The JSON-able form of an upstream page (`source`: index of the upstream it came from)."""
    return {
        "files": [
            {
                "filename": f.filename,
                "upstream_url": f.upstream_url or f.url,
                "sha256": f.sha256,
                "size": f.size,
                "upload_time": f.upload_time.isoformat() if f.upload_time else None,
                "requires_python": f.requires_python,
                "yanked": f.yanked,
                "core_metadata_sha256": f.core_metadata_sha256,
                "has_core_metadata": f.has_core_metadata,
            }
            for f in page.files
        ],
        "versions": list(page.versions),
        "status": page.status,
        "status_reason": page.status_reason,
        "serial": serial,
        "source": source,
    }


def files_of(data: dict[str, Any]) -> list[SimpleFile]:
    """The files of a stored page, with `url` and `upstream_url` both the upstream URL."""
    out = []
    for f in data.get("files", ()):
        upload_time = f.get("upload_time")
        out.append(
            SimpleFile(
                filename=f["filename"],
                url=f["upstream_url"],
                sha256=f.get("sha256"),
                size=f.get("size"),
                upload_time=datetime.fromisoformat(upload_time) if upload_time else None,
                requires_python=f.get("requires_python"),
                yanked=f.get("yanked", False),
                core_metadata_sha256=f.get("core_metadata_sha256"),
                has_core_metadata=bool(f.get("has_core_metadata")),
                upstream_url=f["upstream_url"],
            )
        )
    return out


def _detach(row: ProxyPage) -> StoredPage:
    return StoredPage(
        project=row.project,
        data=dict(row.data or {}),
        etag=row.etag,
        last_modified=row.last_modified,
        fetched_at=row.fetched_at.timestamp(),
        missing=row.missing,
    )


async def load(session: AsyncSession, repository_id: int, project: str) -> StoredPage | None:
    """The stored page of `project` (normalized) in the proxy repository, or None."""
    row = (
        await session.exec(
            select(ProxyPage).where(
                ProxyPage.repository_id == repository_id, ProxyPage.project == project
            )
        )
    ).first()
    return _detach(row) if row is not None else None


async def save(
    sessions: SessionFactory,
    repository_id: int,
    project: str,
    *,
    data: dict[str, Any] | None,
    etag: str | None,
    last_modified: str | None,
    fetched_at: float,
    missing: bool,
) -> None:
    """Store a fetch result. `data=None` keeps the stored data (a 304, a lower serial).

    An answer fetched earlier than the stored one never replaces it (two replicas that raced
    past the lock, or a slow fetch finishing after a fast one).
    """
    when = datetime.fromtimestamp(fetched_at, UTC)
    values: dict[str, Any] = {
        "etag": etag,
        "last_modified": last_modified,
        "fetched_at": when,
        "missing": missing,
    }
    if data is not None:
        values["data"] = data
    for _attempt in range(2):
        async with sessions() as session:
            await begin_write(session)
            result = await session.exec(
                update(ProxyPage)  # type: ignore[call-overload]
                .where(
                    col(ProxyPage.repository_id) == repository_id,
                    col(ProxyPage.project) == project,
                    col(ProxyPage.fetched_at) <= when,
                )
                .values(**values)
            )
            if result.rowcount:
                await session.commit()
                return
            exists = (
                await session.exec(
                    select(ProxyPage.id).where(
                        ProxyPage.repository_id == repository_id, ProxyPage.project == project
                    )
                )
            ).first()
            if exists is not None:
                return  # a newer answer is already stored
            session.add(
                ProxyPage(repository_id=repository_id, project=project, **{"data": {}, **values})
            )
            try:
                await session.commit()
                return
            except IntegrityError:
                await session.rollback()  # inserted concurrently: update that row instead
    return


@lru_cache(maxsize=65536)
def version_of(filename: str) -> str:
    """The version of a proxied file, from its filename (`0` if unparseable): the version
    segment of the file's URL through this registry."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return "0"


def state_key(repository_id: int, project: str) -> str:
    """The cache key where the proxy-cache keeps a page's state (version, age, 404)."""
    return f"proxy:state:{repository_id}:{project}"


async def expire(sessions: SessionFactory, cache: Cache, repository_id: int, project: str) -> bool:
    """Make the next request refetch `project` in full (no validators), in every process:
    the row is aged and the cached state dropped. False if nothing was stored."""
    async with sessions() as session:
        await begin_write(session)
        result = await session.exec(
            update(ProxyPage)  # type: ignore[call-overload]
            .where(col(ProxyPage.repository_id) == repository_id, col(ProxyPage.project) == project)
            .values(fetched_at=EPOCH, etag=None, last_modified=None)
        )
        await session.commit()
    await cache.delete(state_key(repository_id, project))
    return bool(result.rowcount)


async def cached_projects(session: AsyncSession, repository_id: int) -> list[str]:
    """Normalized names of the projects this proxy repository holds a good page for."""
    rows = await session.exec(
        select(ProxyPage.project)
        .where(ProxyPage.repository_id == repository_id, col(ProxyPage.missing).is_(False))
        .order_by(col(ProxyPage.project))
    )
    return list(rows.all())


@dataclass(frozen=True)
class CachedEntry:
    """One stored page of a proxy repository, as the web interface lists it."""

    project: str
    fetched_at: datetime
    missing: bool

    def fresh(self, ttl: float, now: datetime) -> bool:
        """True while the page is served without asking the upstream (`ttl` in seconds)."""
        return (now - self.fetched_at).total_seconds() < ttl


async def cached_entries(
    session: AsyncSession, repository_id: int, *, offset: int, limit: int
) -> tuple[int, list[CachedEntry]]:
    """(how many pages the proxy repository stores, one page of them by project name),
    negative entries (upstream 404s) included. The page data itself is not loaded."""
    total = (
        await session.exec(
            select(func.count(col(ProxyPage.id))).where(ProxyPage.repository_id == repository_id)
        )
    ).one()
    rows = await session.exec(
        select(ProxyPage.project, ProxyPage.fetched_at, ProxyPage.missing)
        .where(ProxyPage.repository_id == repository_id)
        .order_by(col(ProxyPage.project))
        .offset(offset)
        .limit(limit)
    )
    return int(total), [CachedEntry(*row) for row in rows.all()]


async def cached_counts(session: AsyncSession, repository_ids: Iterable[int]) -> dict[int, int]:
    """Projects with a good stored page, per proxy repository id."""
    ids = list(repository_ids)
    if not ids:
        return {}
    rows = await session.exec(
        select(ProxyPage.repository_id, func.count(col(ProxyPage.id)))
        .where(col(ProxyPage.repository_id).in_(ids), col(ProxyPage.missing).is_(False))
        .group_by(col(ProxyPage.repository_id))
    )
    return {repo: int(count) for repo, count in rows.all()}
