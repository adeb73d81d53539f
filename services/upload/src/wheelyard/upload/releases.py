"""Changing what is published: yank and un-yank releases (PEP 592), delete files, set a
project's status (PEP 792). Every change bumps the project's serial in the same transaction and
tells the page cache after commit."""

from __future__ import annotations

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.access import require_admin, require_write
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import AuditEvent, File, Project, Release, utcnow
from wheelyard.shared.domain import blobgc
from wheelyard.shared.domain.hosted import list_scope, project_scope, repository_serial
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import InvalidInput, NotFound
from wheelyard.shared.web.pagecache import PageCache


async def announce(
    session: AsyncSession, pages: PageCache, repo: RepositoryView, project: str, serial: int
) -> None:
    """After a commit: move readers of the project page and the project list forward."""
    await pages.changed(project_scope(repo.id, project), serial)
    await pages.changed(list_scope(repo.id), await repository_serial(session, repo.id))


async def bump_serial(session: AsyncSession, project: Project) -> int:
    """Increment the project's serial in the current transaction and return the new value."""
    await session.exec(
        update(Project).where(col(Project.id) == project.id).values(serial=Project.serial + 1)
    )
    value = (await session.exec(select(Project.serial).where(Project.id == project.id))).one()
    return int(value)


async def set_yanked(
    session: AsyncSession,
    pages: PageCache,
    *,
    repo: RepositoryView,
    principal: Principal,
    project: str,
    version: str,
    yanked: bool,
    reason: str | None,
    source_ip: str | None,
) -> dict[str, object]:
    """Yank (with an optional reason) or un-yank every file of a release (PEP 592)."""
    require_write(principal, repo)
    await begin_write(session)
    proj, release = await _release(session, repo, project, version)
    release.yanked = yanked
    release.yanked_reason = (reason or None) if yanked else None
    session.add(release)
    await _commit_change(
        session,
        pages,
        repo,
        proj,
        principal=principal,
        source_ip=source_ip,
        action="release.yank" if yanked else "release.unyank",
        target=f"{repo.path}/{proj.name}/{release.version}",
        detail={"reason": release.yanked_reason},
    )
    return {
        "project": proj.name,
        "version": release.version,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason,
    }


async def delete_files(
    session: AsyncSession,
    pages: PageCache,
    *,
    repo: RepositoryView,
    principal: Principal,
    project: str,
    version: str,
    filename: str | None,
    source_ip: str | None,
) -> list[str]:
    """Delete one file of a release, or all of them (the repository's admins).

    The rows stay, marked deleted, so a deleted filename can never be uploaded again with
    other bytes (pypicloud #259). The blobs are content-addressed, possibly shared: those no
    other record references are left to garbage collection, after downloads in progress had
    time to finish.
    """
    require_admin(principal, repo)
    await begin_write(session)
    proj, release = await _release(session, repo, project, version)
    stmt = select(File).where(File.release_id == release.id, col(File.deleted_at).is_(None))
    if filename is not None:
        stmt = stmt.where(File.filename == filename)
    files = list((await session.exec(stmt)).all())
    if not files:
        what = f"File '{filename}'" if filename else f"Release '{version}'"
        raise NotFound(f"{what} of '{proj.name}' has no files to delete in '{repo.path}'.")
    now = utcnow()
    for f in files:
        f.deleted_at = now
        session.add(f)
    keys = {f.blob_key for f in files} | {f.metadata_blob_key for f in files if f.metadata_blob_key}
    await blobgc.orphan(session, keys, now + blobgc.DRAIN)
    await _commit_change(
        session,
        pages,
        repo,
        proj,
        principal=principal,
        source_ip=source_ip,
        action="file.delete",
        target=f"{repo.path}/{proj.name}/{release.version}",
        detail={"files": [f.filename for f in files]},
    )
    return [f.filename for f in files]


async def _commit_change(
    session: AsyncSession,
    pages: PageCache,
    repo: RepositoryView,
    proj: Project,
    *,
    principal: Principal,
    source_ip: str | None,
    action: str,
    target: str,
    detail: dict[str, object],
) -> None:
    """Commit a change to `proj` with a new serial and its audit event (`action` on `target`
    by `principal`), then tell readers."""
    serial = await bump_serial(session, proj)
    session.add(
        AuditEvent(
            actor=principal.username,
            action=action,
            target=target,
            source_ip=source_ip,
            detail=detail,
        )
    )
    await session.commit()
    await announce(session, pages, repo, proj.name, serial)


async def _project(session: AsyncSession, repo: RepositoryView, project: str) -> Project:
    name = canonicalize_name(project)
    proj = (
        await session.exec(
            select(Project).where(Project.repository_id == repo.id, Project.name == name)
        )
    ).first()
    if proj is None:
        raise NotFound(f"Project '{project}' does not exist in '{repo.path}'.")
    return proj


async def _release(
    session: AsyncSession, repo: RepositoryView, project: str, version: str
) -> tuple[Project, Release]:
    proj = await _project(session, repo, project)
    try:
        canonical = canonicalize_version(Version(version))
    except ValueError as exc:
        raise InvalidInput(f"Invalid version {version!r}.") from exc
    release = (
        await session.exec(
            select(Release).where(
                Release.project_id == proj.id, Release.canonical_version == canonical
            )
        )
    ).first()
    if release is None:
        raise NotFound(f"Version '{version}' of '{proj.name}' does not exist in '{repo.path}'.")
    return proj, release


#: PEP 792 project statuses.
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")


async def set_status(
    session: AsyncSession,
    pages: PageCache,
    *,
    repo: RepositoryView,
    principal: Principal,
    project: str,
    status: str,
    reason: str | None,
    source_ip: str | None,
) -> dict[str, object]:
    """Set a hosted project's PEP 792 status (the repository's admins): `archived` and
    `quarantined` refuse new uploads (`service`), `quarantined` also lists no files and
    refuses downloads; `deprecated` and `archived` stay installable. Served on the project's
    pages from the next render on."""
    require_admin(principal, repo)
    if repo.type != "hosted":
        raise InvalidInput(
            "Project status is set on hosted repositories; proxy repositories pass their "
            "upstream's status through."
        )
    if status not in PROJECT_STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(PROJECT_STATUSES)}.")
    await begin_write(session)
    proj = await _project(session, repo, project)
    before = proj.status
    proj.status, proj.status_reason = status, reason
    session.add(proj)
    await _commit_change(
        session,
        pages,
        repo,
        proj,
        principal=principal,
        source_ip=source_ip,
        action="project.status",
        target=f"{repo.path}/{proj.name}",
        detail={"from": before, "to": status, "reason": reason},
    )
    return {"repository": repo.path, "project": proj.name, "status": status, "reason": reason}
