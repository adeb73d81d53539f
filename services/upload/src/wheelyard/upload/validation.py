"""Checking an upload before anything is stored: the filename, the form or URL path, the
digests, and the core metadata read safely out of the archive; then writing the verified
blobs (the file, and a wheel's `.metadata`) to the blob store."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version

from wheelyard.shared.config import Settings
from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.shared.packaging.archive import CoreMetadataBytes, read_core_metadata
from wheelyard.shared.packaging.filenames import DistFile, check_matches, parse_dist_filename
from wheelyard.shared.packaging.form import UploadForm, verify_digests
from wheelyard.shared.packaging.metadata import ParsedMetadata, parse_core_metadata
from wheelyard.shared.storage import BlobStore, WrittenBlob
from wheelyard.upload.spool import Spool

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Validated:
    """A file whose name, metadata and (optional) form agree."""

    dist: DistFile
    metadata: ParsedMetadata
    raw_metadata: CoreMetadataBytes


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
        # members) makes it an invalid distribution: 400, as PyPI answers (docs/standards.md §7).
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
        # PEP 658 metadata only for wheels: sdist PKG-INFO may be dynamic (PEP 643).
        raw = validated.raw_metadata
        async with blobs.writer(expected_sha256=raw.sha256) as mw:
            await mw.write(raw.data)
        metadata_blob = mw.result
    return writer.result, metadata_blob
