"""What the web interface shows of hosted repositories: project counts, recent uploads, project
listings, releases and files.

Read-only queries next to `hosted` (which serves the simple and JSON APIs). They select plain
columns, never whole rows: a release's stored metadata holds its README, and a project page
of thousands of files must not load thousands of READMEs. Callers pass only repositories the
viewer may read; nothing here checks access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.models import File, Project, Release
from wheelyard.shared.domain.hosted import same_version
from wheelyard.shared.packaging import pypi_json


def _live_file_of_project() -> Any:
    return (
        select(File.id)
        .where(File.project_id == Project.id, col(File.deleted_at).is_(None))
        .exists()
    )


async def project_counts(session: AsyncSession, repository_ids: Iterable[int]) -> dict[int, int]:
    """Projects with at least one live file, per hosted repository id."""
    ids = list(repository_ids)
    if not ids:
        return {}
    rows = await session.exec(
        select(Project.repository_id, func.count(col(Project.id)))
        .where(col(Project.repository_id).in_(ids), _live_file_of_project())
        .group_by(col(Project.repository_id))
    )
    return {repo: int(count) for repo, count in rows.all()}


@dataclass(frozen=True)
class Upload:
    """One uploaded file, for the list of recent uploads."""

    repository_id: int
    project: str
    display_name: str
    version: str
    filename: str
    size: int
    upload_time: datetime
    uploaded_by: str | None


async def recent_uploads(
    session: AsyncSession, repository_ids: Iterable[int], *, limit: int = 20
) -> list[Upload]:
    """The newest live files of the given hosted repositories, newest first."""
    ids = list(repository_ids)
    if not ids:
        return []
    rows = await session.exec(
        select(  # type: ignore[call-overload]
            File.repository_id,
            Project.name,
            Project.display_name,
            Release.version,
            File.filename,
            File.size,
            File.upload_time,
            File.uploaded_by,
        )
        .join(Project, col(Project.id) == col(File.project_id))
        .join(Release, col(Release.id) == col(File.release_id))
        .where(col(File.repository_id).in_(ids), col(File.deleted_at).is_(None))
        .order_by(col(File.upload_time).desc(), col(File.id).desc())
        .limit(limit)
    )
    return [Upload(*row) for row in rows.all()]


@dataclass(frozen=True)
class ProjectEntry:
    """A project in a repository's listing, with its latest version and that one's summary,
    and when its newest release appeared."""

    name: str
    display_name: str
    version: str | None
    summary: str | None
    last_release: datetime | None


async def project_listing(
    session: AsyncSession, repository_id: int, *, offset: int, limit: int
) -> tuple[int, list[ProjectEntry]]:
    """(how many projects with live files the repository has, one page of them by name)."""
    total = (
        await session.exec(
            select(func.count(col(Project.id))).where(
                Project.repository_id == repository_id, _live_file_of_project()
            )
        )
    ).one()
    projects = (
        await session.exec(
            select(Project.id, Project.name, Project.display_name)
            .where(Project.repository_id == repository_id, _live_file_of_project())
            .order_by(col(Project.name))
            .offset(offset)
            .limit(limit)
        )
    ).all()
    ids = [p[0] for p in projects if p[0] is not None]  # stored rows: never None
    by_project: dict[int | None, list[ReleaseEntry]] = {}
    for owner, entry in await _release_entries(session, ids):
        by_project.setdefault(owner, []).append(entry)
    entries = []
    for project_id, name, display_name in projects:
        releases = by_project.get(project_id, [])
        latest = latest_release(releases)
        entries.append(
            ProjectEntry(
                name=name,
                display_name=display_name,
                version=latest.version if latest else None,
                summary=latest.summary if latest else None,
                last_release=max((r.created_at for r in releases), default=None),
            )
        )
    return int(total), entries


@dataclass(frozen=True)
class ReleaseEntry:
    """One release with live files: its version, yank state, summary, when it was first
    uploaded and how many files it has."""

    id: int
    version: str
    yanked: bool
    yanked_reason: str | None
    summary: str | None
    requires_python: str | None
    created_at: datetime
    files: int


async def _release_entries(
    session: AsyncSession, project_ids: Sequence[int]
) -> list[tuple[int, ReleaseEntry]]:
    if not project_ids:
        return []
    rows = await session.exec(
        select(  # type: ignore[call-overload]
            Release.project_id,
            Release.id,
            Release.version,
            Release.yanked,
            Release.yanked_reason,
            Release.summary,
            Release.requires_python,
            Release.created_at,
            func.count(col(File.id)),
        )
        .join(File, col(File.release_id) == col(Release.id))
        .where(col(Release.project_id).in_(project_ids), col(File.deleted_at).is_(None))
        .group_by(col(Release.id))
    )
    return [(project_id, ReleaseEntry(*fields)) for project_id, *fields in rows.all()]


async def releases_of_project(session: AsyncSession, project_id: int) -> list[ReleaseEntry]:
    """The project's releases that have live files, newest version first."""
    entries = [entry for _, entry in await _release_entries(session, [project_id])]
    return sorted(entries, key=lambda r: pypi_json.version_order_key(r.version), reverse=True)


def latest_release(releases: Iterable[ReleaseEntry]) -> ReleaseEntry | None:
    """The release a project page shows first (PyPI's rule, `pypi_json.latest_version`)."""
    by_version = {r.version: r for r in releases}
    latest = pypi_json.latest_version(
        pypi_json.ReleaseInfo(version=r.version, yanked=r.yanked) for r in by_version.values()
    )
    return by_version[latest.version] if latest else None


def find_release(releases: Sequence[ReleaseEntry], version: str) -> ReleaseEntry | None:
    """The release named `version` in any PEP 440 spelling, or None."""
    exact = next((r for r in releases if r.version == version), None)
    return exact or next((r for r in releases if same_version(version, r.version)), None)


async def release_metadata(session: AsyncSession, release_id: int) -> dict[str, Any]:
    """The core metadata stored for one release (summary, description, classifiers...)."""
    found = (
        await session.exec(select(Release.core_metadata).where(Release.id == release_id))
    ).first()
    return dict(found or {})


@dataclass(frozen=True)
class FileEntry:
    """One live file of a release, with everything its page shows."""

    filename: str
    packagetype: str
    python_version: str
    size: int
    sha256: str
    blake2_256: str
    md5: str
    upload_time: datetime
    requires_python: str | None
    uploaded_by: str | None
    metadata_sha256: str | None


async def release_files(session: AsyncSession, release_id: int) -> list[FileEntry]:
    """The live files of a release: the source distribution first, then wheels by name."""
    rows = await session.exec(
        select(  # type: ignore[call-overload]
            File.filename,
            File.packagetype,
            File.python_version,
            File.size,
            File.sha256,
            File.blake2_256,
            File.md5,
            File.upload_time,
            File.requires_python,
            File.uploaded_by,
            File.metadata_sha256,
        )
        .where(File.release_id == release_id, col(File.deleted_at).is_(None))
        .order_by(col(File.packagetype).desc(), col(File.filename))
    )
    return [FileEntry(*row) for row in rows.all()]
