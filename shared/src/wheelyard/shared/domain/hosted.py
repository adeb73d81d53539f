"""Reading hosted repositories: project pages, project lists, files and releases.

Shared by the index service (hosted repositories) and the proxy-cache service (hosted members
of groups), so both list hosted files exactly the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlalchemy import bindparam, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.models import File, Project, Release, Repository
from wheelyard.shared.domain.policy import Chain, decide
from wheelyard.shared.packaging import pypi_json
from wheelyard.shared.packaging.simple.model import ProjectList, ProjectPage, SimpleFile
from wheelyard.shared.routes import repository_path


def project_scope(repository_id: int, name: str) -> str:
    """The page-cache scope (serial counter) of one project's pages."""
    return f"{repository_id}:p:{name}"


def list_scope(repository_id: int) -> str:
    """The page-cache scope of a repository's project list."""
    return f"{repository_id}:list"


@dataclass(frozen=True)
class ProjectRef:
    """The few project columns the hot path needs."""

    id: int
    name: str
    display_name: str
    serial: int
    status: str
    status_reason: str | None


async def find_project(session: AsyncSession, repository_id: int, name: str) -> ProjectRef | None:
    """The project with normalized `name` in the repository, or None."""
    row = (
        await session.exec(
            # sqlmodel's select() is typed for at most four columns; SQLAlchemy takes any number.
            select(  # type: ignore[call-overload]
                Project.id,
                Project.name,
                Project.display_name,
                Project.serial,
                Project.status,
                Project.status_reason,
            ).where(Project.repository_id == repository_id, Project.name == name)
        )
    ).first()
    return ProjectRef(*row) if row else None


#: Any hosted project called `name`: through the (repository, name) index, per repository.
_HOSTED_ANYWHERE = (
    select(Project.id)
    .where(
        col(Project.repository_id).in_(select(Repository.id).where(Repository.type == "hosted")),
        col(Project.name) == bindparam("name"),
    )
    .limit(1)
)


async def hosted_anywhere(session: AsyncSession, name: str) -> bool:
    """True when a hosted repository (of any storage) has a project with normalized `name`."""
    return (await session.exec(_HOSTED_ANYWHERE, params={"name": name})).first() is not None


async def live_files(session: AsyncSession, project_id: int) -> list[tuple[File, Release]]:
    """The project's files that are not deleted, with their releases, oldest first."""
    rows = await session.exec(
        select(File, Release)
        .join(Release, col(Release.id) == col(File.release_id))
        .where(File.project_id == project_id, col(File.deleted_at).is_(None))
        .order_by(col(File.upload_time), col(File.id))
    )
    return list(rows.all())


async def releases_of(session: AsyncSession, project_id: int) -> list[Release]:
    """Every release of the project."""
    return list((await session.exec(select(Release).where(Release.project_id == project_id))).all())


async def release_infos(
    session: AsyncSession,
    project: ProjectRef,
    url_for: Callable[[str, str], str],
    chain: Chain = (),
) -> list[pypi_json.ReleaseInfo]:
    """The project's releases that have live files, for the PyPI JSON API; `url_for(version,
    filename)` is where each file is downloaded (the repository's or a group's URL). Only
    files the supply-chain rules `chain` serve are listed (none of a quarantined project), so
    a release with none served is left out."""
    files_by_release: dict[int, list[pypi_json.FileInfo]] = {}
    if project.status == "quarantined":
        return []
    now = datetime.now(UTC)
    for f, r in await live_files(session, project.id):
        if chain and not decide(chain, project.name, r.version, f.upload_time, now).served:
            continue
        files_by_release.setdefault(f.release_id, []).append(
            pypi_json.FileInfo(
                filename=f.filename,
                packagetype=f.packagetype,
                python_version=f.python_version,
                url=url_for(r.version, f.filename),
                size=f.size,
                sha256=f.sha256,
                upload_time=f.upload_time,
                blake2_256=f.blake2_256,
                md5=f.md5,
                requires_python=f.requires_python,
                yanked=r.yanked,
                yanked_reason=r.yanked_reason,
                core_metadata_sha256=f.metadata_sha256,
            )
        )
    return [
        pypi_json.ReleaseInfo(
            version=r.version,
            metadata=r.core_metadata,
            yanked=r.yanked,
            yanked_reason=r.yanked_reason,
            files=files_by_release.get(r.id or 0, []),
        )
        for r in await releases_of(session, project.id)
        if r.id in files_by_release
    ]


async def project_page(
    session: AsyncSession, *, base: str, storage: str, repo: str, project: ProjectRef
) -> ProjectPage:
    """The simple page of a hosted project (PEP 503/691/700/592/658).

    Selects plain columns rather than ORM objects: a page of thousands of files is rendered
    on a cache miss while other requests wait, so the load must be cheap.
    """
    rows = await session.exec(
        # sqlmodel's select() is typed for at most four columns; SQLAlchemy takes any number.
        select(  # type: ignore[call-overload]
            File.filename,
            File.sha256,
            File.size,
            File.upload_time,
            File.requires_python,
            File.metadata_sha256,
            Release.version,
            Release.yanked,
            Release.yanked_reason,
        )
        .join(Release, col(Release.id) == col(File.release_id))
        .where(File.project_id == project.id, col(File.deleted_at).is_(None))
        .order_by(col(File.upload_time), col(File.id))
    )
    prefix = f"{base}{repository_path(storage, repo)}/{quote(project.name)}/"
    files = [
        SimpleFile(
            filename=filename,
            url=f"{prefix}{quote(version, safe='')}/{quote(filename, safe='')}",
            sha256=sha256,
            size=size,
            upload_time=upload_time,
            requires_python=requires_python,
            yanked=(reason or True) if yanked else False,
            core_metadata_sha256=metadata_sha256,
            has_core_metadata=metadata_sha256 is not None,
        )
        for (
            filename,
            sha256,
            size,
            upload_time,
            requires_python,
            metadata_sha256,
            version,
            yanked,
            reason,
        ) in rows.all()
    ]
    versions = (
        await session.exec(select(Release.version).where(Release.project_id == project.id))
    ).all()
    return ProjectPage(
        name=project.name,
        files=files,
        versions=sorted(set(versions)),
        status=None if project.status == "active" else project.status,
        status_reason=project.status_reason,
    )


async def project_list(session: AsyncSession, repository_id: int) -> ProjectList:
    """Every project of the repository that has at least one live file."""
    rows = await session.exec(
        select(Project.display_name, Project.name)
        .where(Project.repository_id == repository_id)
        .where(
            select(File.id)
            .where(File.project_id == Project.id, col(File.deleted_at).is_(None))
            .exists()
        )
        .order_by(col(Project.name))
    )
    return ProjectList(projects=tuple((d, n) for d, n in rows.all()))


async def repository_serial(session: AsyncSession, repository_id: int) -> int:
    """A number that grows whenever any project of the repository changes."""
    total = (
        await session.exec(
            select(func.coalesce(func.sum(Project.serial), 0)).where(
                Project.repository_id == repository_id
            )
        )
    ).one()
    return int(total)


@dataclass(frozen=True)
class StoredFile:
    """Where the bytes of a hosted file (or its `.metadata`) are, how many, and their sha256;
    and what the supply-chain rules decide on: the file's project (normalized), version,
    upload time and the project's PEP 792 status."""

    blob_key: str
    size: int
    sha256: str
    project: str = ""
    version: str = ""
    upload_time: datetime | None = None
    status: str = "active"


def same_version(given: str, stored: str) -> bool:
    """True when the version path segment `given` names `stored` (any PEP 440 spelling)."""
    if given == stored:
        return True
    try:
        return canonicalize_version(Version(given)) == canonicalize_version(Version(stored))
    except InvalidVersion:
        return False


@dataclass(frozen=True)
class LiveFile:
    """A live file of a hosted project: its release's version, its bytes and its PEP 658
    metadata's (None when it has none)."""

    version: str
    file: StoredFile
    metadata: StoredFile | None


@dataclass(frozen=True)
class ProjectFiles:
    """Every live file of one hosted project at one serial, by filename: what a download of
    that project needs to know, small enough to keep in memory per serial."""

    files: dict[str, LiveFile]

    def find(self, version: str, filename: str) -> StoredFile | None:
        """The file `filename`, or with `.metadata` appended its PEP 658 metadata, when the
        path's `version` is the file's own (any PEP 440 spelling, so one file has one URL);
        None otherwise."""
        metadata = filename.endswith(".metadata")
        live = self.files.get(filename.removesuffix(".metadata") if metadata else filename)
        if live is None or not same_version(version, live.version):
            return None
        return live.metadata if metadata else live.file

    def size(self) -> int:
        """An estimate of the bytes this table holds (for bounded caches)."""
        return 200 + sum(len(name) + 400 for name in self.files)


async def project_files(session: AsyncSession, project: ProjectRef) -> ProjectFiles:
    """The project's live (not deleted) files, one query, with what the supply-chain rules
    decide on (version, upload time, the project's PEP 792 status). Yanked files stay: PEP 592
    keeps them downloadable."""
    rows = await session.exec(
        # sqlmodel's select() is typed for at most four columns; SQLAlchemy takes any number.
        select(  # type: ignore[call-overload]
            File.filename,
            File.blob_key,
            File.size,
            File.sha256,
            File.metadata_blob_key,
            File.metadata_size,
            File.metadata_sha256,
            Release.version,
            File.upload_time,
        )
        .join(Release, col(Release.id) == col(File.release_id))
        .where(File.project_id == project.id, col(File.deleted_at).is_(None))
    )
    files = {}
    for filename, key, size, sha256, m_key, m_size, m_sha256, version, uploaded in rows.all():
        about = (project.name, version, uploaded, project.status)
        metadata = None
        if m_key is not None and m_size is not None and m_sha256 is not None:
            metadata = StoredFile(m_key, m_size, m_sha256, *about)
        files[filename] = LiveFile(version, StoredFile(key, size, sha256, *about), metadata)
    return ProjectFiles(files)
