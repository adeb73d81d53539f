"""Importing a bundle (`wheelyard.shared.domain.bundles`) into a hosted repository.

All or nothing, in three steps:
1. verify: the manifest (and its signature, when a key is given) and the sha256 of every file
   it lists, before anything else is read; a tampered bundle is refused naming the file;
2. validate and store: each distribution goes through the upload path's own checks
   (`validate_upload`: filename, archive, core metadata) and verified blob writes
   (`store_blobs`); a blob written for an import that then fails is unreferenced and
   harmless (content-addressed, like a crashed upload's);
3. record: every row in ONE transaction (`add_file_rows`, the upload path's), with the upload
   times and yanks the bundle carries; any conflict (the repository holds other bytes under a
   name) rolls the whole import back, so nothing half-imported is ever listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.backends import Backends
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import AuditEvent, File
from wheelyard.shared.domain import blobgc
from wheelyard.shared.domain.bundles import BundledDist, verify_bundle
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import Conflict, IntegrityFailure, InvalidInput, WheelyardError
from wheelyard.shared.storage import WrittenBlob
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.upload.releases import announce
from wheelyard.upload.service import Digests, add_file_rows, spool_dir
from wheelyard.upload.spool import Spool
from wheelyard.upload.validation import Validated, store_blobs, validate_upload

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Imported:
    """What an import did: files added, and files the repository held already (same bytes)."""

    added: int
    unchanged: int


@dataclass(frozen=True)
class _Ready:
    dist: BundledDist
    validated: Validated
    digests: Digests
    file_blob: WrittenBlob
    metadata_blob: WrittenBlob | None


async def _prepare(backends: Backends, directory: Path, dist: BundledDist) -> _Ready:
    settings = backends.settings
    spool = Spool(spool_dir(settings), settings.max_upload_size)
    try:
        async with await anyio.open_file(directory / dist.path, "rb") as fh:
            while chunk := await fh.read(_CHUNK):
                await spool.write(chunk)
        await spool.finish()
        if spool.sha256 != dist.sha256:
            # Changed since it was verified: refuse rather than store other bytes.
            raise IntegrityFailure(f"'{dist.path}' changed while it was being imported")
        try:
            validated = await anyio.to_thread.run_sync(
                lambda: validate_upload(
                    filename=dist.filename,
                    spool=spool,
                    settings=settings,
                    path_project=dist.project,
                    path_version=dist.version,
                )
            )
        except WheelyardError as exc:
            raise InvalidInput(f"'{dist.path}': {exc.message}") from None
        file_blob, metadata_blob = await store_blobs(backends.blobs, spool, validated)
        digests = Digests(spool.sha256, spool.blake2_256, spool.md5, spool.size)
        return _Ready(dist, validated, digests, file_blob, metadata_blob)
    finally:
        spool.discard()


async def import_bundle(
    session: AsyncSession,
    pages: PageCache,
    *,
    backends: Backends,
    repo: RepositoryView,
    directory: Path,
    actor: str,
    public_key: Ed25519PublicKey | None = None,
) -> Imported:
    """Import bundle `directory` into hosted repository `repo` (see the module docstring).
    Raises IntegrityFailure (a file differs from the manifest, named), InvalidInput (not a
    bundle, or a file that is no valid distribution, named) or Conflict (the repository holds
    other bytes under a name); in every case nothing is recorded."""
    if repo.type != "hosted":
        raise InvalidInput(f"'{repo.path}' is a {repo.type} repository; import into a hosted one")
    manifest = await anyio.to_thread.run_sync(
        lambda: verify_bundle(directory, public_key=public_key)
    )
    attempt = 0
    while True:
        async with backends.sessions() as clock:
            write_started = await blobgc.db_now(clock)
        ready = [await _prepare(backends, directory, dist) for dist in manifest.dists]
        try:
            return await _record(
                session, pages, repo, ready, actor, manifest.repository, write_started
            )
        except blobgc.BlobBeingDeleted as exc:
            # Garbage collection was deleting some of these very bytes (an earlier, deleted
            # copy): let it finish, then write them again (as an upload does).
            attempt += 1
            if attempt >= 3:
                raise
            await blobgc.wait_deleted(session, exc.keys)


async def _record(
    session: AsyncSession,
    pages: PageCache,
    repo: RepositoryView,
    ready: list[_Ready],
    actor: str,
    source: str,
    write_started: datetime,
) -> Imported:
    """Every row of the import in one transaction (rolled back entirely on any failure)."""
    added, unchanged, serials = 0, 0, {}
    try:
        await begin_write(session)
        for item in ready:
            dist = item.validated.dist
            result = await add_file_rows(
                session,
                repo,
                validated=item.validated,
                digests=item.digests,
                file_blob=item.file_blob,
                metadata_blob=item.metadata_blob,
                python_version=dist.python_tag,
                uploaded_by=actor,
                write_started=write_started,
                upload_time=(
                    datetime.fromisoformat(item.dist.upload_time) if item.dist.upload_time else None
                ),
            )
            if isinstance(result, File):
                if result.sha256 != item.digests.sha256 or result.deleted_at is not None:
                    raise Conflict(
                        f"'{item.dist.filename}': '{repo.path}' holds or held other bytes under "
                        f"this name ('{result.filename}'); nothing was imported"
                    )
                unchanged += 1
                continue
            if item.dist.yanked and not result.release.yanked:
                result.release.yanked = True
                if isinstance(item.dist.yanked, str):
                    result.release.yanked_reason = item.dist.yanked
                session.add(result.release)
            serials[dist.project] = result.serial
            added += 1
        session.add(
            AuditEvent(
                actor=actor,
                action="bundle.import",
                target=repo.path,
                detail={"source": source, "added": added, "unchanged": unchanged},
            )
        )
        await session.commit()
    except (IntegrityError, WheelyardError, blobgc.BlobBeingDeleted):
        await session.rollback()
        raise
    for project, serial in serials.items():
        await announce(session, pages, repo, project, serial)
    return Imported(added, unchanged)
