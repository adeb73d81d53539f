"""The write path's front door: `publish` one distribution file (yank and delete are in
`releases`, the checks in `validation`).

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
from datetime import datetime
from pathlib import Path
from typing import Protocol

import anyio
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.access import allowed, can_read, denial, missing, require_write
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import AuditEvent, File, Project, Release
from wheelyard.shared.domain import blobgc
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
    Unauthenticated,
)
from wheelyard.shared.metrics import UPLOADS
from wheelyard.shared.packaging.filenames import DistFile
from wheelyard.shared.packaging.form import UploadForm
from wheelyard.shared.packaging.metadata import ParsedMetadata
from wheelyard.shared.storage import WrittenBlob
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.upload.releases import announce, bump_serial
from wheelyard.upload.spool import Spool
from wheelyard.upload.validation import Validated, store_blobs, validate_upload


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
class Received:
    """An upload's spooled bytes and what came with them: the form (legacy API) or the
    project and version named by the URL (raw PUT)."""

    spool: Spool
    filename: str
    form: UploadForm | None = None
    path_project: str | None = None
    path_version: str | None = None


class Incoming(Protocol):
    """An upload body not read yet: `publish` receives it once the caller may write."""

    async def receive(self, spool_dir: Path, limit: int) -> Received:
        """Spool the file (at most `limit` bytes) into `spool_dir`; InvalidInput/TooLarge."""
        ...


async def publish(
    session: AsyncSession,
    pages: PageCache,
    *,
    backends: Backends,
    directory: RepositoryDirectory,
    principal: Principal,
    storage: str,
    repo: str,
    incoming: Incoming,
    source_ip: str | None,
) -> Published:
    """Publish one file to `storage/repo` (a hosted repository, or a group's first hosted
    member): check the caller may write there, then receive, validate, store and record it.
    Re-publishing identical bytes is a no-op (`created=False`). Every attempt is counted by
    outcome (`wheelyard_uploads_total`)."""
    try:
        published = await _publish(
            session,
            pages,
            backends=backends,
            directory=directory,
            principal=principal,
            storage=storage,
            repo=repo,
            incoming=incoming,
            source_ip=source_ip,
        )
    except BaseException as exc:
        UPLOADS.labels(_outcome_of(exc)).inc()
        raise
    UPLOADS.labels("stored" if published.created else "unchanged").inc()
    return published


def _outcome_of(exc: BaseException) -> str:
    for cls, outcome in _OUTCOMES:
        if isinstance(exc, cls):
            return outcome
    return "failed"


_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (Conflict, "conflict"),
    (TooLarge, "too_large"),
    (InvalidInput, "invalid"),
    (Unauthenticated, "forbidden"),
    (Forbidden, "forbidden"),
    (NotFound, "not_found"),
)


async def _publish(
    session: AsyncSession,
    pages: PageCache,
    *,
    backends: Backends,
    directory: RepositoryDirectory,
    principal: Principal,
    storage: str,
    repo: str,
    incoming: Incoming,
    source_ip: str | None,
) -> Published:
    target = await upload_target(directory, principal, storage, repo)  # before reading the body
    settings = backends.settings
    received = await incoming.receive(spool_dir(settings), settings.max_upload_size)
    spool = received.spool
    try:
        validated = await anyio.to_thread.run_sync(
            lambda: validate_upload(
                filename=received.filename,
                spool=spool,
                settings=settings,
                form=received.form,
                path_project=received.path_project,
                path_version=received.path_version,
            )
        )
        attempt = 0
        while True:
            write_started = await blobgc.db_now(session)
            file_blob, metadata_blob = await store_blobs(backends.blobs, spool, validated)
            try:
                return await record_upload(
                    session,
                    pages,
                    repo=target,
                    principal=principal,
                    spool=spool,
                    validated=validated,
                    file_blob=file_blob,
                    metadata_blob=metadata_blob,
                    form=received.form,
                    source_ip=source_ip,
                    write_started=write_started,
                )
            except blobgc.BlobBeingDeleted as exc:
                # Garbage collection was deleting these very bytes (an earlier, deleted copy):
                # let it finish, then write them again.
                await session.rollback()
                attempt += 1
                if attempt >= 3:
                    raise
                await blobgc.wait_deleted(session, exc.keys)
    finally:
        spool.discard()


async def upload_target(
    directory: RepositoryDirectory, principal: Principal, storage: str, name: str
) -> RepositoryView:
    """The hosted repository an upload to `storage/name` by `principal` lands in, once the
    caller is known to may write there.

    A group forwards uploads to its first hosted member; a proxy takes none. Refusals never
    tell more than the caller may read: a repository they may not read answers as a missing
    one (not even its kind is told), and a refusal through a group names the group, never its
    member.
    """
    view = await directory.get(storage, name)
    if view is None:
        raise missing(principal, f"{storage}/{name}")
    if view.type == "hosted":
        require_write(principal, view)
        return view
    if not can_read(principal, view):
        raise denial(principal, view, "write")
    if view.type == "proxy":
        raise Forbidden(f"'{view.path}' is a proxy repository; it does not accept uploads.")
    for m_storage, m_name in view.member_refs:
        member_view = await directory.get(m_storage, m_name)
        if member_view is not None and member_view.type == "hosted":
            if not allowed(principal, member_view, "write"):
                raise denial(principal, view, "write")
            return member_view
    raise Forbidden(f"Group '{view.path}' has no hosted member to upload to.")


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
    write_started: datetime | None = None,
) -> Published:
    """Commit the project, release and file rows; idempotent for identical bytes.
    `write_started`: `blobgc.db_now` before the blobs were stored (raises
    `blobgc.BlobBeingDeleted` if garbage collection may have deleted them since; without it,
    any recent deletion of the same bytes counts)."""
    dist = validated.dist
    try:
        await begin_write(session)
        added = await add_file_rows(
            session,
            repo,
            validated=validated,
            digests=Digests(spool.sha256, spool.blake2_256, spool.md5, spool.size),
            file_blob=file_blob,
            metadata_blob=metadata_blob,
            python_version=form.pyversion if form else dist.python_tag,
            uploaded_by=principal.username,
            write_started=write_started,
        )
        if isinstance(added, File):
            return _existing_outcome(repo, added, spool, dist)
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
        # A concurrent upload of the same file (or project/release) won the race.
        await session.rollback()
        existing = await _same_file(session, repo, dist)
        if existing is None:
            raise
        return _existing_outcome(repo, existing, spool, dist)
    await announce(session, pages, repo, dist.project, added.serial)
    return Published(
        repo.path, dist.project, str(dist.version), dist.filename, spool.sha256, spool.size, True
    )


@dataclass(frozen=True)
class Digests:
    """A file's digests and size, as computed while its bytes were received."""

    sha256: str
    blake2_256: str
    md5: str
    size: int


@dataclass(frozen=True)
class Added:
    """The rows `add_file_rows` added: the release (to yank on import) and the project's
    new serial (to announce after the commit)."""

    release: Release
    serial: int


async def add_file_rows(
    session: AsyncSession,
    repo: RepositoryView,
    *,
    validated: Validated,
    digests: Digests,
    file_blob: WrittenBlob,
    metadata_blob: WrittenBlob | None,
    python_version: str,
    uploaded_by: str | None,
    write_started: datetime | None,
    upload_time: datetime | None = None,
) -> Added | File:
    """Add the project (if new), release (if new) and file rows of a validated file whose
    blobs are stored, in the caller's write transaction (nothing is committed). Returns the
    file the repository holds or held under that name or identity instead, adding nothing
    (the caller decides: same bytes or a conflict). Raises Forbidden for an archived or
    quarantined project. `write_started` is `blobgc.db_now` before the blobs were stored
    (raises `blobgc.BlobBeingDeleted` when garbage collection may have deleted them since).
    `upload_time` keeps another index's (an import); default now."""
    dist, meta = validated.dist, validated.metadata
    project = await _project_for_upload(session, repo, dist.project, meta.name)
    existing = await _same_file(session, repo, dist)
    if existing is not None:
        return existing
    release = await _release_for_upload(session, project, dist, meta)
    assert project.id is not None and release.id is not None  # both flushed or loaded
    row = File(
        repository_id=repo.id,
        project_id=project.id,
        release_id=release.id,
        filename=dist.filename,
        identity=dist.identity,
        packagetype="bdist_wheel" if dist.kind == "wheel" else "sdist",
        python_version=python_version,
        sha256=digests.sha256,
        blake2_256=digests.blake2_256,
        md5=digests.md5,
        size=digests.size,
        requires_python=meta.requires_python,
        blob_key=file_blob.key,
        metadata_sha256=metadata_blob.sha256 if metadata_blob else None,
        metadata_blob_key=metadata_blob.key if metadata_blob else None,
        metadata_size=metadata_blob.size if metadata_blob else None,
        uploaded_by=uploaded_by,
    )
    if upload_time is not None:
        row.upload_time = upload_time
    session.add(row)
    serial = await bump_serial(session, project)
    keys = [file_blob.key] + ([metadata_blob.key] if metadata_blob else [])
    await blobgc.guard_references(session, keys, write_started)
    return Added(release, serial)


def _existing_outcome(
    repo: RepositoryView, existing: File, spool: Spool, dist: DistFile
) -> Published:
    """The answer to an upload of a file the repository holds or held: `existing` has the same
    filename or, spelled otherwise, the same identity (what an installer sees)."""
    same_name = existing.filename == dist.filename
    if existing.deleted_at is not None:
        if same_name:
            raise InvalidInput(
                f"This filename was previously used by a file that has since been deleted: "
                f"'{dist.filename}'. Use a new version."
            )
        raise InvalidInput(
            f"'{dist.filename}' is the same file to installers as '{existing.filename}' "
            "(same project, version, build tag and tags), a name previously used by a file "
            "that has since been deleted. Use a new version."
        )
    if hmac.compare_digest(existing.sha256, spool.sha256):
        # The same bytes: done already, whatever the spelling (twine --skip-existing and
        # `uv publish --check-url` retries then succeed; the stored name is reported).
        return Published(
            repo.path,
            dist.project,
            str(dist.version),
            existing.filename,
            existing.sha256,
            existing.size,
            False,
        )
    # "File already exists" is load-bearing: twine, poetry and pdm match on it
    # (pypa/twine#332, pypi/warehouse#3482; docs/standards.md §7).
    also = (
        ""
        if same_name
        else f" '{dist.filename}' is the same file to installers (same project, version, "
        "build tag and tags)."
    )
    raise Conflict(
        f"File already exists ('{existing.filename}', with sha256 hash '{existing.sha256}')."
        f"{also} A file's contents cannot change; upload it under a new version."
    )


async def _same_file(session: AsyncSession, repo: RepositoryView, dist: DistFile) -> File | None:
    """The live or deleted file of `repo` named `dist.filename`, else the one with its identity."""
    rows = (
        await session.exec(
            select(File).where(
                File.repository_id == repo.id,
                or_(col(File.filename) == dist.filename, col(File.identity) == dist.identity),
            )
        )
    ).all()
    return next((f for f in rows if f.filename == dist.filename), rows[0] if rows else None)


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
    assert project.id is not None  # flushed or loaded by _project_for_upload
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


def spool_dir(settings: Settings) -> Path:
    """Where upload spool files live: inside the data dir, on the same disk as the blobs."""
    return settings.data_dir / "tmp" / "uploads"
