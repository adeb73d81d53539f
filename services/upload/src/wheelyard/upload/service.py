"""The write path: publish a distribution file, yank and un-yank releases, delete files.

Order of work for an upload (after the body is spooled and hashed):
1. validate the filename, the form (or URL path) and the digests;
2. read the core metadata out of the archive (safely, in a worker thread) and check that
   filename, form/path and metadata all name the same project and version;
3. write the file (and its `.metadata`) to the blob store, content-addressed, verified;
4. commit the rows in one transaction; the database's unique constraints decide races;
5. tell the page cache (read-after-write for `uv publish --check-url`).

A crash between 3 and 4 leaves an unreferenced, content-addressed blob: harmless, and a retry
of the same upload reuses it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

import anyio
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.access import require_admin, require_write
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.config import Settings
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import AuditEvent, File, Project, Release, utcnow
from wheelyard.shared.db.registry import RepositoryDirectory, RepositoryView
from wheelyard.shared.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from wheelyard.shared.hosted import list_scope, project_scope, repository_serial
from wheelyard.shared.packaging.archive import CoreMetadataBytes, read_core_metadata
from wheelyard.shared.packaging.filenames import DistFile, check_matches, parse_dist_filename
from wheelyard.shared.packaging.form import UploadForm, verify_digests
from wheelyard.shared.packaging.metadata import ParsedMetadata, parse_core_metadata
from wheelyard.shared.pagecache import PageCache
from wheelyard.shared.storage import BlobStore, WrittenBlob
from wheelyard.upload.spool import Spool

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Published:
    """The outcome of an upload: `created` is False for a byte-identical re-upload."""

    repository: str
    project: str
    version: str
    filename: str
    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class Validated:
    """A file whose name, metadata and (optional) form agree."""

    dist: DistFile
    metadata: ParsedMetadata
    raw_metadata: CoreMetadataBytes


async def upload_target(
    session: AsyncSession, directory: RepositoryDirectory, storage: str, name: str
) -> RepositoryView:
    """The hosted repository an upload to `storage/name` lands in.

    A group forwards uploads to its first hosted member; a proxy takes none.
    """
    view = await directory.require(storage, name)
    if view.type == "hosted":
        return view
    if view.type == "proxy":
        raise Forbidden(f"'{view.path}' is a proxy repository; it does not accept uploads.")
    for member in view.members:
        m_storage, _, m_name = member.partition("/")
        member_view = await directory.get(m_storage, m_name)
        if member_view is not None and member_view.type == "hosted":
            return member_view
    raise Forbidden(f"Group '{view.path}' has no hosted member to upload to.")


def validate_upload(
    *,
    filename: str,
    spool: Spool,
    settings: Settings,
    form: UploadForm | None = None,
    path_project: str | None = None,
    path_version: str | None = None,
) -> Validated:
    """Check everything about an upload that does not need the database (runs in a thread).

    Raises InvalidInput with a message that says exactly what is wrong.
    """
    dist = parse_dist_filename(filename)
    if form is not None:
        expected_type = "bdist_wheel" if dist.kind == "wheel" else "sdist"
        if form.filetype != expected_type:
            raise InvalidInput(
                f"The form says filetype '{form.filetype}' but '{filename}' is a "
                f"{'wheel' if dist.kind == 'wheel' else 'source distribution'} "
                f"(expected '{expected_type}')."
            )
        check_matches(dist, name=form.name, version=form.version, source="form")
        verify_digests(form, sha256=spool.sha256, blake2_256=spool.blake2_256, md5=spool.md5)
    if path_project is not None or path_version is not None:
        _check_path(dist, path_project, path_version)
    if dist.version.local and not settings.allow_local_versions:
        raise InvalidInput(
            f"The use of local versions in {str(dist.version)!r} is not allowed here."
        )
    try:
        raw = read_core_metadata(spool.path, dist)
    except TooLarge as exc:
        # The body was within the upload limit; what the archive holds (a bomb, too many
        # members) makes it an invalid distribution: 400, as PyPI answers (digest §10 item 47).
        raise InvalidInput(exc.message) from None
    metadata = parse_core_metadata(raw.data)
    check_matches(dist, name=metadata.name, version=metadata.version, source="metadata")
    return Validated(dist, metadata, raw)


def _check_path(dist: DistFile, project: str | None, version: str | None) -> None:
    if project is not None and canonicalize_name(project) != dist.project:
        raise InvalidInput(
            f"The URL names project '{project}' but the file '{dist.filename}' is for "
            f"'{dist.project}'."
        )
    if version is not None:
        try:
            same = canonicalize_version(Version(version)) == dist.canonical_version
        except ValueError:
            same = False
        if not same:
            raise InvalidInput(
                f"The URL names version '{version}' but the file '{dist.filename}' is "
                f"version {dist.version}."
            )


async def store_blobs(
    blobs: BlobStore, spool: Spool, validated: Validated
) -> tuple[WrittenBlob, WrittenBlob | None]:
    """Write the file and (for wheels) its core metadata to the blob store, verified."""
    writer = blobs.writer(expected_sha256=spool.sha256, expected_size=spool.size)
    async with writer, await anyio.open_file(spool.path, "rb") as fh:
        while chunk := await fh.read(READ_CHUNK):
            await writer.write(chunk)
    assert writer.result is not None
    metadata_blob = None
    if validated.dist.kind == "wheel":
        # PEP 658 metadata only for wheels: sdist PKG-INFO may be dynamic (digest §7.4).
        raw = validated.raw_metadata
        async with blobs.writer(expected_sha256=raw.sha256) as mw:
            await mw.write(raw.data)
        metadata_blob = mw.result
    return writer.result, metadata_blob


async def record_upload(
    session: AsyncSession,
    pages: PageCache,
    *,
    repo: RepositoryView,
    principal: Principal,
    spool: Spool,
    validated: Validated,
    file_blob: WrittenBlob,
    metadata_blob: WrittenBlob | None,
    form: UploadForm | None,
    source_ip: str | None,
) -> Published:
    """Commit the project, release and file rows; idempotent for identical bytes."""
    dist, meta = validated.dist, validated.metadata
    try:
        await begin_write(session)
        project = await _project_for_upload(session, repo, dist.project, meta.name)
        existing = await _file_named(session, repo, dist.filename)
        if existing is not None:
            return _existing_outcome(repo, existing, spool, dist)
        release = await _release_for_upload(session, project, dist, meta)
        if dist.kind == "sdist" and await _has_live_sdist(session, release):
            raise InvalidInput("Only one sdist may be uploaded per release.")
        session.add(
            File(
                repository_id=repo.id,
                project_id=project.id,
                release_id=release.id,
                filename=dist.filename,
                packagetype="bdist_wheel" if dist.kind == "wheel" else "sdist",
                python_version=form.pyversion if form else dist.python_tag,
                sha256=spool.sha256,
                blake2_256=spool.blake2_256,
                md5=spool.md5,
                size=spool.size,
                requires_python=meta.requires_python,
                blob_key=file_blob.key,
                metadata_sha256=metadata_blob.sha256 if metadata_blob else None,
                metadata_blob_key=metadata_blob.key if metadata_blob else None,
                metadata_size=metadata_blob.size if metadata_blob else None,
                uploaded_by=principal.username,
            )
        )
        serial = await bump_serial(session, project)
        session.add(
            AuditEvent(
                actor=principal.username,
                action="file.upload",
                target=f"{repo.path}/{dist.project}/{dist.filename}",
                source_ip=source_ip,
                detail={"sha256": spool.sha256, "size": spool.size},
            )
        )
        await session.commit()
    except IntegrityError:
        # A concurrent upload of the same filename (or project/release) won the race.
        await session.rollback()
        existing = await _file_named(session, repo, dist.filename)
        if existing is None:
            raise
        return _existing_outcome(repo, existing, spool, dist)
    await announce(session, pages, repo, dist.project, serial)
    return Published(
        repo.path, dist.project, str(dist.version), dist.filename, spool.sha256, spool.size, True
    )


async def announce(
    session: AsyncSession, pages: PageCache, repo: RepositoryView, project: str, serial: int
) -> None:
    """After a commit: move readers of the project page and the project list forward."""
    await pages.changed(project_scope(repo.id, project), serial)
    await pages.changed(list_scope(repo.id), await repository_serial(session, repo.id))


def _existing_outcome(
    repo: RepositoryView, existing: File, spool: Spool, dist: DistFile
) -> Published:
    if existing.deleted_at is not None:
        raise InvalidInput(
            f"This filename was previously used by a file that has since been deleted: "
            f"'{dist.filename}'. Use a new version."
        )
    if hmac.compare_digest(existing.sha256, spool.sha256):
        return Published(
            repo.path,
            dist.project,
            str(dist.version),
            dist.filename,
            existing.sha256,
            existing.size,
            False,
        )
    # "File already exists" is load-bearing: twine, poetry and pdm match on it (digest §5.3).
    raise Conflict(
        f"File already exists ('{dist.filename}', with sha256 hash '{existing.sha256}'). "
        "A file's contents cannot change; upload it under a new version."
    )


async def _file_named(session: AsyncSession, repo: RepositoryView, filename: str) -> File | None:
    return (
        await session.exec(
            select(File).where(File.repository_id == repo.id, File.filename == filename)
        )
    ).first()


async def _project_for_upload(
    session: AsyncSession, repo: RepositoryView, name: str, display: str
) -> Project:
    stmt = select(Project).where(Project.repository_id == repo.id, Project.name == name)
    project = (await session.exec(stmt)).first()
    if project is None:
        try:
            async with session.begin_nested():
                project = Project(repository_id=repo.id, name=name, display_name=display)
                session.add(project)
        except IntegrityError:
            project = (await session.exec(stmt)).one()
    elif project.display_name != display:
        project.display_name = display  # PyPI follows the latest spelling
        session.add(project)
    if project.status in ("archived", "quarantined"):
        raise Forbidden(f"Project '{name}' is {project.status}; it does not accept uploads.")
    return project


async def _release_for_upload(
    session: AsyncSession, project: Project, dist: DistFile, meta: ParsedMetadata
) -> Release:
    stmt = select(Release).where(
        Release.project_id == project.id, Release.canonical_version == dist.canonical_version
    )
    release = (await session.exec(stmt)).first()
    if release is not None:
        return release
    try:
        async with session.begin_nested():
            release = Release(
                project_id=project.id,
                version=str(dist.version),
                canonical_version=dist.canonical_version,
                is_prerelease=dist.version.is_prerelease,
                summary=meta.summary,
                requires_python=meta.requires_python,
                core_metadata=meta.as_json(),
            )
            session.add(release)
    except IntegrityError:
        release = (await session.exec(stmt)).one()
    return release


async def _has_live_sdist(session: AsyncSession, release: Release) -> bool:
    row = await session.exec(
        select(File.id).where(
            File.release_id == release.id,
            File.packagetype == "sdist",
            col(File.deleted_at).is_(None),
        )
    )
    return row.first() is not None


async def bump_serial(session: AsyncSession, project: Project) -> int:
    """Increment the project's serial in the current transaction and return the new value."""
    await session.exec(
        update(Project).where(col(Project.id) == project.id).values(serial=Project.serial + 1)  # type: ignore[call-overload]
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
    serial = await bump_serial(session, proj)
    session.add(
        AuditEvent(
            actor=principal.username,
            action="release.yank" if yanked else "release.unyank",
            target=f"{repo.path}/{proj.name}/{release.version}",
            source_ip=source_ip,
            detail={"reason": release.yanked_reason},
        )
    )
    await session.commit()
    await announce(session, pages, repo, proj.name, serial)
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
    other bytes (pypicloud #259). The blobs stay too: content-addressed, possibly shared.
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
    serial = await bump_serial(session, proj)
    session.add(
        AuditEvent(
            actor=principal.username,
            action="file.delete",
            target=f"{repo.path}/{proj.name}/{release.version}",
            source_ip=source_ip,
            detail={"files": [f.filename for f in files]},
        )
    )
    await session.commit()
    await announce(session, pages, repo, proj.name, serial)
    return [f.filename for f in files]


async def _release(
    session: AsyncSession, repo: RepositoryView, project: str, version: str
) -> tuple[Project, Release]:
    name = canonicalize_name(project)
    proj = (
        await session.exec(
            select(Project).where(Project.repository_id == repo.id, Project.name == name)
        )
    ).first()
    if proj is None:
        raise NotFound(f"Project '{project}' does not exist in '{repo.path}'.")
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


def spool_dir(settings: Settings) -> Path:
    """Where upload spool files live: inside the data dir, on the same disk as the blobs."""
    return settings.data_dir / "tmp" / "uploads"
