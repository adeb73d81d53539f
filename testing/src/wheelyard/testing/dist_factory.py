"""Build wheels and sdists (good and hostile) in a test's tmp_path.

Shared by the unit tests of `wheelyard.shared.packaging` and meant for reuse by integration
and end-to-end tests. Everything is built with `zipfile`/`tarfile` in the test process; nothing
is downloaded. Each function returns the path it wrote.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

Members = Mapping[str, bytes | str]


def escaped_name(name: str) -> str:
    """The `_`-form of a project name used in filenames (`Foo.Bar` -> `foo_bar`)."""
    return canonicalize_name(name).replace("-", "_")


def metadata_text(
    name: str,
    version: str,
    *,
    metadata_version: str = "2.1",
    summary: str | None = "A test distribution",
    requires_python: str | None = None,
    requires_dist: Iterable[str] = (),
    extra_headers: Iterable[tuple[str, str]] = (),
    description: str | None = None,
    newline: str = "\n",
) -> str:
    """Core metadata in email format, with a body description if `description` is given."""
    headers = [("Metadata-Version", metadata_version), ("Name", name), ("Version", version)]
    if summary is not None:
        headers.append(("Summary", summary))
    if requires_python is not None:
        headers.append(("Requires-Python", requires_python))
    headers.extend(("Requires-Dist", req) for req in requires_dist)
    headers.extend(extra_headers)
    text = newline.join(f"{key}: {value}" for key, value in headers) + newline
    if description is not None:
        text += newline + description
    return text


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    """`{escaped}-{version}-{tag}.whl` with the version normalized."""
    return f"{escaped_name(name)}-{Version(version)}-{tag}.whl"


def sdist_filename(name: str, version: str, ext: str = ".tar.gz") -> str:
    """`{escaped}-{normalized version}.tar.gz` (PEP 625)."""
    return f"{escaped_name(name)}-{Version(version)}{ext}"


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def make_wheel(
    directory: Path,
    name: str = "demo",
    version: str = "1.0",
    *,
    filename: str | None = None,
    tag: str = "py3-none-any",
    metadata_version: str = "2.1",
    requires_python: str | None = None,
    metadata: bytes | str | None = None,
    dist_info: str | None = None,
    omit: Iterable[str] = (),
    extra_members: Members | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
    member_compression: Mapping[str, int] | None = None,
) -> Path:
    """Write a wheel into `directory` and return its path.

    `metadata` replaces the generated METADATA (str is UTF-8 encoded, bytes are kept as is).
    `dist_info` overrides the `.dist-info` directory name. `omit` drops any of "WHEEL",
    "METADATA", "RECORD". `extra_members` adds `{archive name: content}` (any name, including
    hostile ones). `member_compression` sets the compression per archive name.
    """
    filename = filename or wheel_filename(name, version, tag)
    dist_info = dist_info or f"{escaped_name(name)}-{Version(version)}.dist-info"
    if metadata is None:
        metadata = metadata_text(
            name, version, metadata_version=metadata_version, requires_python=requires_python
        )
    members: dict[str, bytes | str] = {
        f"{escaped_name(name)}/__init__.py": "VALUE = 1\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ),
        f"{dist_info}/RECORD": "",
    }
    for part in omit:
        members.pop(f"{dist_info}/{part}")
    members.update(extra_members or {})
    path = directory / filename
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for member, content in members.items():
            method = (member_compression or {}).get(member, compression)
            archive.writestr(member, _bytes(content), compress_type=method)
    return path


def make_wheel_with_zeros(
    directory: Path,
    name: str = "demo",
    version: str = "1.0",
    *,
    size: int,
    chunk: int = 1024 * 1024,
) -> Path:
    """Write `make_wheel(directory, name, version)` plus one deflated member
    `<escaped name>/zeros.bin` of exactly `size` zero bytes, and return its path.

    The zeros are streamed in `chunk`-sized writes, so neither the test's memory nor the file
    grows with `size` (100 MiB of zeros deflate to about 100 KiB): a decompression bomb that is
    otherwise a valid wheel.
    """
    path = make_wheel(directory, name, version)
    zeros = bytes(chunk)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(f"{escaped_name(name)}/zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=size > 0xFFFFFFFF) as out:
            remaining = size
            while remaining > 0:
                out.write(zeros[: min(chunk, remaining)])
                remaining -= chunk
    return path


def make_zip(
    path: Path,
    members: Members | Iterable[tuple[str, bytes | str]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a plain zip with exactly `members` (order kept; pairs may repeat a name)."""
    items = members.items() if isinstance(members, Mapping) else members
    with zipfile.ZipFile(path, "w", compression=compression) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; we want them
        for member, content in items:
            archive.writestr(member, _bytes(content))
    return path


def wheel_members(name: str = "demo", version: str = "1.0") -> dict[str, bytes | str]:
    """The members `make_wheel` writes by default, for building variants with `make_zip`."""
    dist_info = f"{escaped_name(name)}-{Version(version)}.dist-info"
    return {
        f"{escaped_name(name)}/__init__.py": "VALUE = 1\n",
        f"{dist_info}/METADATA": metadata_text(name, version),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n",
        f"{dist_info}/RECORD": "",
    }


def patch_bytes(path: Path, old: bytes, new: bytes, *, count: int = -1) -> Path:
    """Replace `old` with `new` (same length) in the file: local header and central directory."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data, f"{old!r} not in {path.name}"
    path.write_bytes(data.replace(old, new, count))
    return path


class _Unseekable(io.RawIOBase):
    """A write-only stream that cannot seek, so zipfile writes data descriptors."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self._target = target
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._target.write(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def seek(self, *args: object) -> int:
        raise OSError("not seekable")


def make_zip_with_data_descriptors(path: Path, members: Members) -> Path:
    """Write a zip as a non-seekable stream would: every entry has a data descriptor."""
    with path.open("wb") as raw, zipfile.ZipFile(_Unseekable(raw), "w") as archive:
        for member, content in members.items():
            archive.writestr(member, _bytes(content))
    return path


def make_zip_tar_polyglot(path: Path, members: Members) -> Path:
    """Write a zip whose first 512 bytes are also a valid tar header (a zip+tar polyglot).

    The first entry gets a large extra field; bytes 100-511 of the file, which fall inside it,
    are overwritten with a tar header's fields and a matching checksum.
    """
    items = list(members.items())
    first_name, first_content = items[0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(first_name)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.extra = struct.pack("<HH", 0xCAFE, 600) + bytes(600)
        archive.writestr(info, _bytes(first_content))
        for member, content in items[1:]:
            archive.writestr(member, _bytes(content))
    data = bytearray(path.read_bytes())
    assert 30 + len(first_name) + 4 < 100, "first member name too long for the trick"
    tar_header = tarfile.TarInfo("polyglot").tobuf(format=tarfile.USTAR_FORMAT)
    data[100:512] = tar_header[100:512]
    data[148:156] = b" " * 8
    checksum = sum(data[:512])
    data[148:155] = b"%06o\0" % checksum
    path.write_bytes(bytes(data))
    return path


def make_zip_bomb(path: Path, *, member: str, size: int, chunk: int = 1024 * 1024) -> Path:
    """Write a zip whose `member` holds `size` zero bytes, streamed (memory stays small)."""
    zeros = bytes(chunk)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=size > 0xFFFFFFFF) as out:
            remaining = size
            while remaining > 0:
                out.write(zeros[: min(chunk, remaining)])
                remaining -= chunk
    return path


class TarMember:
    """One tar member to write: content for files, or a special type with `linkname`."""

    def __init__(
        self,
        name: str,
        content: bytes | str = b"",
        *,
        type: bytes = tarfile.REGTYPE,
        linkname: str = "",
        size: int | None = None,
    ) -> None:
        self.name = name
        self.content = _bytes(content)
        self.type = type
        self.linkname = linkname
        self.size = size

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.linkname = self.linkname
        info.mode = 0o644
        info.size = len(self.content) if self.type in tarfile.REGULAR_TYPES else 0
        if self.size is not None:
            info.size = self.size
        return info


def make_sdist(
    directory: Path,
    name: str = "demo",
    version: str = "1.0",
    *,
    filename: str | None = None,
    top: str | None = None,
    metadata_version: str = "2.2",
    requires_python: str | None = None,
    pkg_info: bytes | str | TarMember | None = None,
    omit_pkg_info: bool = False,
    extra_members: Iterable[TarMember] = (),
    tar_format: int = tarfile.PAX_FORMAT,
    trailing: bytes = b"",
) -> Path:
    """Write a `.tar.gz` sdist into `directory` and return its path.

    `top` overrides the top-level directory. `pkg_info` replaces PKG-INFO: bytes/str for the
    content, or a `TarMember` (e.g. a symlink) used as is. `extra_members` adds any members,
    hostile ones included (`../evil`, devices, links, sparse headers). `trailing` is appended
    after the gzip stream.
    """
    filename = filename or sdist_filename(name, version)
    top = top if top is not None else f"{escaped_name(name)}-{Version(version)}"
    members: list[TarMember] = [
        TarMember(f"{top}", type=tarfile.DIRTYPE),
        TarMember(f"{top}/pyproject.toml", '[project]\nname = "x"\n'),
    ]
    if not omit_pkg_info:
        if isinstance(pkg_info, TarMember):
            members.append(pkg_info)
        else:
            content = pkg_info
            if content is None:
                content = metadata_text(
                    name,
                    version,
                    metadata_version=metadata_version,
                    requires_python=requires_python,
                )
            members.append(TarMember(f"{top}/PKG-INFO", content))
    members.extend(extra_members)
    return write_tar_gz(directory / filename, members, tar_format=tar_format, trailing=trailing)


def write_tar_gz(
    path: Path,
    members: Iterable[TarMember],
    *,
    tar_format: int = tarfile.PAX_FORMAT,
    trailing: bytes = b"",
) -> Path:
    """Write `members` as a gzip-compressed tar (then `trailing` raw bytes) to `path`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for member in members:
            info = member.tarinfo()
            data = io.BytesIO(member.content) if info.size else None
            archive.addfile(info, data)
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0) + trailing)
    return path


def make_tar_bomb(path: Path, *, top: str, size: int, chunk: int = 1024 * 1024) -> Path:
    """Write a tar.gz with `top/PKG-INFO` after a member of `size` zero bytes, streamed."""
    with gzip.open(path, "wb", compresslevel=1) as out, tarfile.open(fileobj=out, mode="w|") as tar:
        info = tarfile.TarInfo(f"{top}/zeros.bin")
        info.size = size
        tar.addfile(info, _ZeroReader(size, chunk))
        pkg = metadata_text("demo", "1.0").encode()
        info = tarfile.TarInfo(f"{top}/PKG-INFO")
        info.size = len(pkg)
        tar.addfile(info, io.BytesIO(pkg))
    return path


class _ZeroReader(io.RawIOBase):
    def __init__(self, size: int, chunk: int) -> None:
        self._left = size
        self._chunk = bytes(chunk)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = min(self._left, len(self._chunk) if size < 0 else min(size, len(self._chunk)))
        self._left -= n
        return self._chunk[:n]
