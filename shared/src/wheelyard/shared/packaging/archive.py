"""Read core metadata out of an uploaded distribution file, safely (docs/standards.md §8).

Nothing is ever extracted to disk. A wheel (or legacy `.zip` sdist) is checked as a whole from
its central directory and local headers before one member is read, through the streaming API
and with a hard cap. A `.tar.gz` sdist is streamed once through a decompression budget and
every member header is checked on the way. All failures are `InvalidInput` (size limits:
`TooLarge`) with a message starting "Invalid distribution file:".

Why hand-written: neither `zipfile` nor `tarfile` offers a validating, bounded read of a
hostile archive, and CPython only rejects overlapping zip entries from 3.11.8/3.12.2 on
(CVE-2024-0450; this project runs on 3.11.7), so the framing walk below does it itself.

Why one module of ~600 lines: the zip and tar readers check each other's framing (a file that
is both a zip and a tar.gz is refused by either), so split they would import each other.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.utils import canonicalize_name, canonicalize_version

from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.shared.packaging.filenames import DistFile
from wheelyard.shared.packaging.names import shown

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what reading one distribution file may cost.

    `max_members`: entries in the archive. `max_total_uncompressed`: the sum a zip declares.
    `ratio_min_size`/`max_compression_ratio`: PyPI's rule, refuse more than `ratio_min_size`
    uncompressed at a ratio above `max_compression_ratio` (warehouse #13962); for a tar.gz it
    bounds how far decompression may run. `max_sdist_uncompressed`: absolute tar.gz budget.
    `max_metadata_size`: the METADATA/PKG-INFO member. `max_tar_header_size`: one pax or GNU
    long-name header (tarfile keeps those in memory).
    """

    max_members: int = 100_000
    max_total_uncompressed: int = 8 * GiB
    ratio_min_size: int = 64 * MiB
    max_compression_ratio: float = 50.0
    max_sdist_uncompressed: int = 512 * MiB
    max_metadata_size: int = 10 * MiB
    max_tar_header_size: int = 1 * MiB


@dataclass(frozen=True)
class CoreMetadataBytes:
    """The exact bytes of a distribution's METADATA or PKG-INFO, and where they were found.

    `data` is byte-for-byte what the archive holds (the PEP 658 `.metadata` body).
    """

    data: bytes
    member: str

    @property
    def sha256(self) -> str:
        """Lowercase hex sha256 of `data` (the `core-metadata` hash on simple pages)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def blake2_256(self) -> str:
        """Lowercase hex BLAKE2b-256 of `data`."""
        return hashlib.blake2b(self.data, digest_size=32).hexdigest()


def _invalid(reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid distribution file: {reason}")


def _too_large(reason: str) -> TooLarge:
    return TooLarge(f"Invalid distribution file: {reason}")


_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def _check_path(name: str, kind: str) -> None:
    """Refuse control characters, backslashes, absolute paths and invalid UTF-8."""
    if not name:
        raise _invalid(f"an archive {kind} has an empty name.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise _invalid(f"archive {kind} {shown(name)} has control characters in its name.")
    if "\\" in name:
        raise _invalid(f"archive {kind} {shown(name)} has a backslash in its name.")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise _invalid(f"archive {kind} {shown(name)} is an absolute path.")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"archive {kind} {shown(name)} is not valid UTF-8.") from None


def _check_member_name(name: str) -> None:
    """Refuse names an extractor could be tricked with (CVE-2007-4559; docs/standards.md §8)."""
    _check_path(name, "member")
    if ".." in name.split("/"):
        raise _invalid(f"archive member {shown(name)} has a '..' path component.")


def _budget(file_size: int, limits: ArchiveLimits) -> int:
    """How many bytes decompression may produce from a `file_size`-byte archive."""
    by_ratio = max(limits.ratio_min_size, int(file_size * limits.max_compression_ratio))
    return min(limits.max_sdist_uncompressed, by_ratio)


# --------------------------------------------------------------------------------------------
# Zip framing: the end record, then a walk over local headers in offset order.
# Zip layout: APPNOTE.TXT §4.3 (https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT).

_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record, 22 bytes
_EOCD64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
_MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class _EndRecord:
    entries: int
    cd_offset: int
    cd_size: int


def _read_end_record(fp: IO[bytes], file_size: int, *, strict: bool = True) -> _EndRecord | None:
    """Find the end record that ends exactly at EOF (no trailing data) and check its layout.

    Strict: the central directory must sit where the end record says, so nothing precedes the
    archive. Not strict: the layout zipfile (and most unzip tools) would accept, allowing data
    before the archive; used to spot a zip hidden at the end of another format. Returns None
    if there is no such record.
    """
    tail_size = min(file_size, _EOCD.size + _MAX_COMMENT)
    fp.seek(file_size - tail_size)
    tail = fp.read(tail_size)
    position = len(tail)
    while (position := tail.rfind(b"PK\x05\x06", 0, position)) >= 0:
        record = tail[position : position + _EOCD.size]
        if len(record) == _EOCD.size:
            _, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment_len = _EOCD.unpack(
                record
            )
            if position + _EOCD.size + comment_len == len(tail):
                break
    else:
        return None
    if disk != 0 or cd_disk != 0 or on_disk != entries:
        return None  # multi-disk archives are not distributions
    eocd_offset = file_size - tail_size + position
    cd_end = eocd_offset
    locator_offset = eocd_offset - _EOCD64_LOCATOR.size
    locator = b""
    if locator_offset >= 0:
        fp.seek(locator_offset)
        locator = fp.read(_EOCD64_LOCATOR.size)
    # Zip64 when a locator sits right before the end record, sentinels or not (zipfile looks
    # for it the same way). It points at the zip64 record, which must sit right before it.
    if locator.startswith(b"PK\x06\x07"):
        _, _, eocd64_offset, _ = _EOCD64_LOCATOR.unpack(locator)
        cd_end = locator_offset - _EOCD64.size
        if cd_end < 0 or (strict and eocd64_offset != cd_end):
            return None  # also refuses zip64 "extensible data"
        fp.seek(cd_end)
        sig, _, _, _, _, _, on_disk64, entries, cd_size, cd_offset = _EOCD64.unpack(
            fp.read(_EOCD64.size)
        )
        if sig != b"PK\x06\x06" or on_disk64 != entries:
            return None
    elif 0xFFFF in (entries, on_disk) or 0xFFFFFFFF in (cd_size, cd_offset):
        return None  # sentinels without the zip64 records
    cd_start = cd_end - cd_size
    if cd_start < 0 or (strict and cd_offset != cd_start):
        return None  # data before the archive, or between directory and end record
    if entries:
        fp.seek(cd_start)
        if fp.read(4) != b"PK\x01\x02":
            return None
    return _EndRecord(entries=entries, cd_offset=cd_start, cd_size=cd_size)


def _decoded_name(raw: bytes, flags: int) -> str:
    # The same rule zipfile applies: UTF-8 if general-purpose bit 11 is set, else cp437.
    return raw.decode("utf-8" if flags & 0x800 else "cp437")


def _walk_local_headers(fp: IO[bytes], infos: list[zipfile.ZipInfo], end: _EndRecord) -> None:
    """Check that local entries tile the file from 0 to the central directory, in order.

    This refuses overlapping entries (the "quoted-overlap" bomb, CVE-2024-0450), hidden data
    between entries, prepended data (zip+anything polyglots), local headers that disagree with
    the central directory (parser differentials) and data descriptors, like PyPI does
    (warehouse utils/zipfiles.py).
    """
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != position:
            raise _invalid(
                f"zip entry {shown(info.orig_filename)} does not start where the previous one "
                "ends (overlapping entries or hidden data)."
            )
        fp.seek(position)
        header = fp.read(_LOCAL.size)
        if len(header) != _LOCAL.size:
            raise _invalid("truncated zip local header.")
        sig, _, flags, method, _, _, _, csize, usize, name_len, extra_len = _LOCAL.unpack(header)
        if sig != b"PK\x03\x04":
            raise _invalid(f"bad zip local header for {shown(info.orig_filename)}.")
        if flags & 0x08:
            raise _invalid("zip entries with data descriptors are not accepted.")
        raw_name = fp.read(name_len)
        if _decoded_name(raw_name, flags) != info.orig_filename or method != info.compress_type:
            raise _invalid(
                f"zip local header for {shown(info.orig_filename)} disagrees with the central "
                "directory."
            )
        zip64 = 0xFFFFFFFF in (csize, usize)  # the real sizes are in the zip64 extra field
        if not zip64 and (csize, usize) != (info.compress_size, info.file_size):
            raise _invalid(
                f"zip local header sizes for {shown(info.orig_filename)} disagree with the "
                "central directory."
            )
        position += _LOCAL.size + name_len + extra_len + info.compress_size
    if position != end.cd_offset:
        raise _invalid("zip central directory does not follow the last entry.")


def _looks_like_tar(fp: IO[bytes]) -> bool:
    """True if the file starts with a valid tar header (a zip+tar polyglot; PyPI refuses them).

    Only the first block is parsed (never `tarfile.is_tarfile`, which would read a hostile pax
    header into memory). A compressed tar cannot start with the zip signature we demand at
    offset 0, so a plain header is the only case left.
    """
    fp.seek(0)
    block = fp.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


@contextmanager
def _open_zip(
    path: Path, limits: ArchiveLimits
) -> Iterator[tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]]:
    """Validate the whole zip structure, then yield it open and ready for one bounded read."""
    file_size = path.stat().st_size
    with path.open("rb") as fp:
        end = _read_end_record(fp, file_size)
        if end is None:
            raise _invalid("not a zip file, or data after the end of the zip archive.")
        # Count before zipfile builds a ZipInfo per entry: that costs memory per entry.
        if end.entries > limits.max_members:
            raise _too_large(f"more than {limits.max_members} entries in the archive.")
        if _looks_like_tar(fp):
            raise _invalid("the file is both a zip and a tar archive.")
        try:
            archive = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
            raise _invalid(f"not a valid zip file ({exc}).") from None
        with archive:
            infos = archive.infolist()
            if len(infos) != end.entries:
                raise _invalid("zip central directory entry count is wrong.")
            _check_zip_entries(infos, file_size, limits)
            _walk_local_headers(fp, infos, end)
            yield archive, infos


def _check_zip_entries(infos: list[zipfile.ZipInfo], file_size: int, limits: ArchiveLimits) -> None:
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.orig_filename
        # `filename` can differ from the raw name: zipfile cuts it at a NUL and, from 3.12,
        # takes it from an Info-ZIP Unicode Path extra field. Extractors use either; check both.
        for spelling in {name, info.filename}:
            _check_member_name(spelling)
            if spelling in seen:
                raise _invalid(f"duplicate archive member {shown(spelling)}.")
            seen.add(spelling)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # PyPI allows only these two (warehouse's forklift/legacy.py).
            raise _invalid(
                f"member {shown(name)} uses an unsupported compression method; only stored "
                "and deflate are allowed."
            )
        if info.flag_bits & 0x1:
            raise _invalid(f"member {shown(name)} is encrypted.")
        total += info.file_size
    if total > limits.max_total_uncompressed:
        raise _too_large(
            f"the archive declares {total} bytes uncompressed, more than the limit of "
            f"{limits.max_total_uncompressed}."
        )
    if total > limits.ratio_min_size and total / max(file_size, 1) > limits.max_compression_ratio:
        raise _too_large(
            f"File exceeds compression ratio of {limits.max_compression_ratio:g} "
            f"({total} bytes uncompressed from {file_size})."
        )


def _read_zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits
) -> bytes:
    if stat.S_ISLNK(info.external_attr >> 16):
        raise _invalid(f"{shown(info.orig_filename)} is a symbolic link, not a file.")
    if info.file_size > limits.max_metadata_size:
        raise _too_large(
            f"{shown(info.orig_filename)} is larger than {limits.max_metadata_size} bytes."
        )
    try:
        with archive.open(info) as member:
            # Read one byte past the cap: zipfile stops at the declared size and checks the
            # CRC at the end, so a lying header cannot make this read grow.
            data = member.read(limits.max_metadata_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _invalid(f"cannot read {shown(info.orig_filename)} ({exc}).") from None
    if len(data) > limits.max_metadata_size:  # pragma: no cover - zipfile stops at file_size
        raise _too_large(
            f"{shown(info.orig_filename)} is larger than {limits.max_metadata_size} bytes."
        )
    return data


def _top_level(names: Iterable[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names}


def _dist_info_matches(directory: str, dist: DistFile) -> bool:
    stem = directory[: -len(".dist-info")]
    name, _, version = stem.partition("-")
    return (
        bool(name)
        and canonicalize_name(name) == dist.project
        and canonicalize_version(version) == dist.canonical_version
    )


def _wheel_metadata(path: Path, dist: DistFile, limits: ArchiveLimits) -> CoreMetadataBytes:
    with _open_zip(path, limits) as (archive, infos):
        dist_infos = sorted(
            d for d in _top_level(i.orig_filename for i in infos) if d.endswith(".dist-info")
        )
        if len(dist_infos) != 1:
            found = ", ".join(shown(d) for d in dist_infos) or "none"
            raise _invalid(
                f"a wheel needs exactly one top-level .dist-info directory (found {found})."
            )
        directory = dist_infos[0]
        if not _dist_info_matches(directory, dist):
            raise _invalid(
                f"the directory {shown(directory)} does not match the filename's project "
                f"{dist.project} and version {dist.version_part}."
            )
        files = {i.orig_filename: i for i in infos if not i.is_dir()}
        for required in ("WHEEL", "METADATA", "RECORD"):
            member = f"{directory}/{required}"
            if member not in files:
                # PyPI's wording (forklift/legacy.py).
                raise _invalid(
                    f"Wheel {dist.filename!r} does not contain the required {required} file: "
                    f"{member}"
                )
        member = f"{directory}/METADATA"
        return CoreMetadataBytes(
            data=_read_zip_member(archive, files[member], limits), member=member
        )


def _single_top_directory(names: list[str]) -> str:
    tops = _top_level(names)
    if len(tops) != 1 or all("/" not in n.rstrip("/") for n in names):
        raise _invalid("an sdist must hold exactly one top-level directory.")
    return tops.pop()


def _zip_sdist_metadata(path: Path, limits: ArchiveLimits) -> CoreMetadataBytes:
    with _open_zip(path, limits) as (archive, infos):
        top = _single_top_directory([i.orig_filename for i in infos])
        member = f"{top}/PKG-INFO"
        info = next((i for i in infos if i.orig_filename == member and not i.is_dir()), None)
        if info is None:
            raise _invalid(f"PKG-INFO not found at {member}.")
        return CoreMetadataBytes(data=_read_zip_member(archive, info, limits), member=member)


# --------------------------------------------------------------------------------------------
# tar.gz sdists: one streaming pass through a decompression budget.


class _BudgetedReader(io.RawIOBase):
    """A readable stream over gzip output that fails once `budget` bytes were produced.

    Each `read` returns at most 1 MiB (also for `read()`), so no call holds much in memory.
    """

    def __init__(self, source: gzip.GzipFile, budget: int) -> None:
        super().__init__()
        self._source = source
        self._budget = budget
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # Never decompress more than one byte past the budget, whatever the caller asks for.
        allowed = min(self._budget - self.produced + 1, MiB)
        size = allowed if size is None or size < 0 else min(size, allowed)
        data = self._source.read(size)
        self.produced += len(data)
        if self.produced > self._budget:
            raise _too_large(
                f"the sdist decompresses to more than {self._budget} bytes (limit, or "
                "compression ratio too high)."
            )
        return data


# Headers whose payload tarfile reads whole into memory: pax and GNU long name/link.
_HEADER_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class _BoundedTarInfo(tarfile.TarInfo):
    """TarInfo that refuses, before tarfile reads them into memory, oversized extended headers
    and GNU sparse members. `_proc_member` is tarfile's per-header dispatch (stable since 2.x).
    """

    max_header_size = 1 * MiB

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        if self.type in _HEADER_TYPES and self.size > self.max_header_size:
            raise _too_large(f"a tar extended header is larger than {self.max_header_size} bytes.")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _invalid(f"sparse member {shown(self.name)} is not allowed.")
        # A private TarInfo hook that typeshed does not declare.
        return super()._proc_member(tarfile_)  # type: ignore[misc]


_ALLOWED_TAR_TYPES = (*tarfile.REGULAR_TYPES, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE)


def _check_tar_member(member: tarfile.TarInfo, symlinks: set[str]) -> str:
    """Check one member; return its normalized name (no `./` prefix, no trailing `/`).

    `symlinks` holds the symlinks seen so far: a member below one of them would be written
    through the link by an extractor (the symlink-chain escape), so it is refused.
    """
    _check_member_name(member.name)
    if member.issparse():
        raise _invalid(f"sparse member {shown(member.name)} is not allowed.")
    if member.type not in _ALLOWED_TAR_TYPES:
        special = member.ischr() or member.isblk() or member.isfifo()
        kind = "device or FIFO" if special else "special"
        raise _invalid(f"{kind} member {shown(member.name)} is not allowed.")
    name = posixpath.normpath(member.name)
    parent = posixpath.dirname(name)
    while parent:
        if parent in symlinks:
            raise _invalid(f"member {shown(member.name)} lies below the symlink {shown(parent)}.")
        parent = posixpath.dirname(parent)
    if member.issym() or member.islnk():
        _check_path(member.linkname, "link target")
        # A symlink resolves from its own directory, a hard link from the archive root.
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if target == ".." or target.startswith("../"):
            raise _invalid(f"link {shown(member.name)} points outside the archive.")
        if member.issym():
            symlinks.add(name)
    return name


def _scan_tar(archive: tarfile.TarFile, limits: ArchiveLimits) -> tuple[str, bytes | None]:
    """Check every member of a streamed tar; return the top directory and PKG-INFO's bytes."""
    top: str | None = None
    pkg_info: bytes | None = None
    seen: set[str] = set()
    symlinks: set[str] = set()
    count = 0
    while (member := archive.next()) is not None:
        count += 1
        if count > limits.max_members:
            raise _too_large(f"more than {limits.max_members} entries in the archive.")
        name = _check_tar_member(member, symlinks)
        # tarfile keeps every header it has read; a forward-only scan needs none of them.
        # (`members` is private and missing from typeshed.)
        archive.members.clear()  # type: ignore[attr-defined]
        if name == ".":
            continue  # an explicit entry for the archive root itself
        if name in seen:
            raise _invalid(f"duplicate archive member {shown(name)}.")
        seen.add(name)
        first, _, rest = name.partition("/")
        if top is None:
            top = first
        elif first != top:
            raise _invalid("an sdist must hold exactly one top-level directory.")
        if rest == "PKG-INFO":
            pkg_info = _read_pkg_info(archive, member, limits)
    if top is None:
        raise _invalid("the sdist archive is empty.")
    return top, pkg_info


def _tar_sdist_metadata(path: Path, limits: ArchiveLimits) -> CoreMetadataBytes:
    class _LimitedTarInfo(_BoundedTarInfo):
        max_header_size = limits.max_tar_header_size

    file_size = path.stat().st_size
    with path.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise _invalid("not a gzip-compressed tar file.")
        if _read_end_record(raw, file_size, strict=False) is not None:
            raise _invalid("the file is both a tar.gz and a zip archive.")
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                reader = _BudgetedReader(unzipped, _budget(file_size, limits))
                # "r|": a forward-only stream; nothing is seeked, listed or extracted.
                with tarfile.open(
                    fileobj=reader, mode="r|", tarinfo=_LimitedTarInfo, bufsize=64 * 1024
                ) as archive:
                    top, pkg_info = _scan_tar(archive, limits)
                # Drain to the end: checks the gzip CRC and refuses trailing non-gzip data.
                while reader.read(1024 * 1024):
                    pass
        except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as exc:
            raise _invalid(f"not a valid tar.gz file ({exc}).") from None
    if pkg_info is None:
        raise _invalid(f"PKG-INFO not found at {top}/PKG-INFO.")
    return CoreMetadataBytes(data=pkg_info, member=f"{top}/PKG-INFO")


def _read_pkg_info(
    archive: tarfile.TarFile, member: tarfile.TarInfo, limits: ArchiveLimits
) -> bytes:
    if not member.isreg():
        # twine refuses a symlinked PKG-INFO, and a link is never followed here
        # (docs/standards.md §8).
        raise _invalid(f"{shown(member.name)} must be a regular file, not a link or directory.")
    if member.size > limits.max_metadata_size:
        raise _too_large(f"{shown(member.name)} is larger than {limits.max_metadata_size} bytes.")
    extracted = archive.extractfile(member)
    if extracted is None:  # pragma: no cover - isreg() members always extract
        raise _invalid(f"cannot read {shown(member.name)}.")
    data = extracted.read(limits.max_metadata_size + 1)
    if len(data) != member.size:
        raise _invalid(f"{shown(member.name)} is truncated.")
    return data


def read_core_metadata(
    path: Path, dist: DistFile, *, limits: ArchiveLimits = ArchiveLimits()
) -> CoreMetadataBytes:
    """Return the exact METADATA (wheel) or PKG-INFO (sdist) bytes of the file at `path`.

    `dist` is the parsed upload filename; its extension picks the format and, for wheels, its
    name and version must match the single `{name}-{version}.dist-info` directory, which must
    hold WHEEL, METADATA and RECORD. Raises `InvalidInput` ("Invalid distribution file: ...")
    for anything malformed or dangerous and `TooLarge` when a limit is crossed. Reads at most
    `limits` worth of data, writes nothing, never follows links.
    """
    if dist.extension == ".whl":
        return _wheel_metadata(path, dist, limits)
    if dist.extension == ".zip":
        return _zip_sdist_metadata(path, limits)
    if dist.extension == ".tar.gz":
        return _tar_sdist_metadata(path, limits)
    raise _invalid(f"unsupported file type {shown(dist.extension)}.")
