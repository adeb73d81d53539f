"""Safe core-metadata extraction from wheels and sdists, hostile archives included.

Covers docs/standards.md §8: exact bytes for PEP 658, required members (a wheel's METADATA,
WHEEL and RECORD; an sdist's regular PKG-INFO), zip and tar bombs refused quickly with bounded
memory (pypi/warehouse#13962), framing tricks such as overlapping entries (CVE-2024-0450), only
stored or deflated members, and path tricks in member names (CVE-2007-4559, PEP 706).
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.shared.packaging.archive import ArchiveLimits, read_core_metadata
from wheelyard.shared.packaging.filenames import parse_dist_filename
from wheelyard.testing.dist_factory import (
    TarMember,
    make_sdist,
    make_tar_bomb,
    make_wheel,
    make_wheel_with_zeros,
    make_zip,
    make_zip_bomb,
    make_zip_tar_polyglot,
    make_zip_with_data_descriptors,
    metadata_text,
    patch_bytes,
    wheel_members,
    write_tar_gz,
)

MiB = 1024 * 1024


def read(path: Path, **kwargs: Any) -> bytes:
    dist = parse_dist_filename(path.name, allow_zip_sdist=True)
    return read_core_metadata(path, dist, **kwargs).data


def refused(
    path: Path, match: str, *, error: type[InvalidInput] = InvalidInput, **kwargs: Any
) -> None:
    with pytest.raises(error, match=match) as caught:
        read(path, **kwargs)
    assert caught.value.message.startswith("Invalid distribution file: ")


def bounded(action: Callable[[], object], *, seconds: float, peak_mib: float) -> None:
    """Run `action` (expected to raise) and check its wall time and traced memory peak."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        action()
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f}s"
    assert peak < peak_mib * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


# ---------------------------------------------------------------------------------- wheels


class TestWheelHappyPath:
    def test_returns_the_exact_metadata_bytes_and_member(self, tmp_path: Path) -> None:
        raw = metadata_text("Foo.Bar", "1.0", requires_python=">=3.9").encode()
        path = make_wheel(tmp_path, "Foo.Bar", "1.0", metadata=raw)
        result = read_core_metadata(path, parse_dist_filename(path.name))
        assert result.data == raw
        assert result.member == "foo_bar-1.0.dist-info/METADATA"
        assert len(result.sha256) == 64
        assert len(result.blake2_256) == 64

    @pytest.mark.parametrize(
        "raw",
        [
            b"Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0\r\n\r\nBody\r\n",
            b"\xef\xbb\xbfMetadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
            b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: trailing  \n\n\n",
            "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: Jürgen\n".encode(),
        ],
        ids=["crlf", "bom", "trailing-space", "utf8"],
    )
    def test_bytes_are_identical_whatever_the_line_endings(
        self, tmp_path: Path, raw: bytes
    ) -> None:
        assert read(make_wheel(tmp_path, metadata=raw)) == raw

    def test_stored_members_are_fine(self, tmp_path: Path) -> None:
        assert read(make_wheel(tmp_path, compression=zipfile.ZIP_STORED)).startswith(
            b"Metadata-Version"
        )

    @pytest.mark.parametrize("dist_info", ["Foo.Bar-1.0.dist-info", "foo_bar-1.0.0.dist-info"])
    def test_dist_info_name_compares_normalized(self, tmp_path: Path, dist_info: str) -> None:
        path = make_wheel(tmp_path, "Foo.Bar", "1.0", dist_info=dist_info)
        assert read(path).startswith(b"Metadata-Version")

    def test_other_top_level_content_and_data_dir_are_fine(self, tmp_path: Path) -> None:
        path = make_wheel(
            tmp_path,
            extra_members={"demo-1.0.data/scripts/run": "#!python\n", "demo_ext.py": ""},
        )
        assert read(path)


class TestWheelStructure:
    @pytest.mark.parametrize("part", ["WHEEL", "METADATA", "RECORD"])
    def test_required_dist_info_files(self, tmp_path: Path, part: str) -> None:
        path = make_wheel(tmp_path, omit=[part])
        refused(
            path,
            f"Wheel 'demo-1.0-py3-none-any.whl' does not contain the required {part} file: "
            f"demo-1.0.dist-info/{part}",
        )

    def test_two_dist_info_directories(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={"other-1.0.dist-info/METADATA": "x"})
        refused(path, "exactly one top-level .dist-info directory")

    def test_case_variant_dist_info_counts_twice(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={"Demo-1.0.dist-info/METADATA": "x"})
        refused(path, "exactly one top-level .dist-info directory")

    def test_no_dist_info_directory(self, tmp_path: Path) -> None:
        path = make_zip(tmp_path / "demo-1.0-py3-none-any.whl", {"demo/__init__.py": ""})
        refused(path, "found none")

    def test_nested_dist_info_does_not_count(self, tmp_path: Path) -> None:
        members = {
            k.replace("demo-1.0.dist-info", "sub/demo-1.0.dist-info"): v
            for k, v in wheel_members().items()
        }
        refused(make_zip(tmp_path / "demo-1.0-py3-none-any.whl", members), "found none")

    @pytest.mark.parametrize(
        ("dist_info", "what"),
        [("other-1.0.dist-info", "project"), ("demo-2.0.dist-info", "version")],
    )
    def test_dist_info_must_match_the_filename(
        self, tmp_path: Path, dist_info: str, what: str
    ) -> None:
        path = make_wheel(tmp_path, dist_info=dist_info)
        refused(path, "does not match the filename's project demo and version 1.0")

    def test_symlinked_metadata_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "demo-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in wheel_members().items():
                info = zipfile.ZipInfo(name)
                if name.endswith("METADATA"):
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, content)
        refused(path, "symbolic link")


class TestWheelFraming:
    def test_not_a_zip(self, tmp_path: Path) -> None:
        path = tmp_path / "demo-1.0-py3-none-any.whl"
        path.write_bytes(b"this is not a zip file" * 100)
        refused(path, "not a zip file")

    def test_empty_file(self, tmp_path: Path) -> None:
        path = tmp_path / "demo-1.0-py3-none-any.whl"
        path.write_bytes(b"")
        refused(path, "not a zip file")

    def test_a_tar_gz_named_whl(self, tmp_path: Path) -> None:
        sdist = make_sdist(tmp_path)
        path = tmp_path / "demo-1.0-py3-none-any.whl"
        path.write_bytes(sdist.read_bytes())
        refused(path, "not a zip file")

    def test_zip_tar_polyglot(self, tmp_path: Path) -> None:
        path = make_zip_tar_polyglot(tmp_path / "demo-1.0-py3-none-any.whl", wheel_members())
        assert tarfile.is_tarfile(path) and zipfile.is_zipfile(path)  # really both
        refused(path, "both a zip and a tar archive")

    def test_prepended_data(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        path.write_bytes(b"#!/bin/sh\nexit 0\n" + path.read_bytes())
        assert zipfile.ZipFile(path).testzip() is None  # zipfile itself accepts it
        refused(path, "not a zip file")

    def test_trailing_data(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        path.write_bytes(path.read_bytes() + b"\x00" * 100)
        refused(path, "data after the end of the zip archive")

    def test_archive_comment_is_fine(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        with zipfile.ZipFile(path, "a") as archive:
            archive.comment = b"built by tests"
        assert read(path)

    def test_overlapping_entries(self, tmp_path: Path) -> None:
        # Point the second entry's central-directory offset at the first local header, as
        # "quoted-overlap" bombs do (CVE-2024-0450); zipfile on 3.11.7 does not notice.
        path = make_wheel(tmp_path)
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            cd_offset = archive.start_dir
        second = data.index(b"PK\x01\x02", cd_offset + 4)
        data[second + 42 : second + 46] = (0).to_bytes(4, "little")
        path.write_bytes(bytes(data))
        bounded(lambda: refused(path, "overlapping entries"), seconds=2, peak_mib=8)

    def test_entry_data_running_into_the_next_header(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            first = min(archive.infolist(), key=lambda i: i.header_offset)
            cd_offset = archive.start_dir
        entry = data.index(b"PK\x01\x02", cd_offset)
        while int.from_bytes(data[entry + 42 : entry + 46], "little") != first.header_offset:
            entry = data.index(b"PK\x01\x02", entry + 4)
        grown = (first.compress_size + 40).to_bytes(4, "little")
        data[entry + 20 : entry + 24] = grown  # central directory compressed size
        data[18:22] = grown  # and the local header, so only the overlap is wrong
        path.write_bytes(bytes(data))
        refused(path, "overlapping entries|disagree")

    def test_local_header_disagreeing_with_central_directory(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        data = bytearray(path.read_bytes())
        name = b"demo/__init__.py"
        data[data.index(name) : data.index(name) + len(name)] = b"demo/__evil__.py"
        path.write_bytes(bytes(data))
        refused(path, "disagrees with the central directory")

    def test_zip64_end_record(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # zipfile writes the zip64 end record and locator past 65535 entries; lower that bar
        # instead of writing 65536 entries.
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
        path = make_zip(tmp_path / "demo-1.0-py3-none-any.whl", wheel_members())
        monkeypatch.undo()
        assert b"PK\x06\x06" in path.read_bytes()[-200:]
        assert read(path).startswith(b"Metadata-Version")

    def test_zip64_sentinels_without_zip64_records(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        data = bytearray(path.read_bytes())
        end = data.rindex(b"PK\x05\x06")
        data[end + 10 : end + 12] = b"\xff\xff"  # total entries
        path.write_bytes(bytes(data))
        refused(path, "not a zip file")

    def test_zip64_local_headers(self, tmp_path: Path) -> None:
        path = make_zip(tmp_path / "demo-1.0-py3-none-any.whl", wheel_members())
        with (
            zipfile.ZipFile(path, "a") as archive,
            archive.open("demo/big", "w", force_zip64=True) as out,
        ):
            out.write(b"zip64 sized entry")
        assert read(path).startswith(b"Metadata-Version")

    def test_local_header_sizes_disagreeing(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, compression=zipfile.ZIP_STORED)
        with zipfile.ZipFile(path) as archive:
            first = min(archive.infolist(), key=lambda i: i.header_offset)
        data = bytearray(path.read_bytes())
        data[22:26] = (first.file_size + 1).to_bytes(4, "little")  # local uncompressed size
        path.write_bytes(bytes(data))
        refused(path, "sizes .* disagree with the central directory")

    def test_bad_local_header_signature(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        data = bytearray(path.read_bytes())
        data[0:4] = b"PK\x07\x08"
        path.write_bytes(bytes(data))
        refused(path, "bad zip local header")

    def test_hidden_data_before_the_central_directory(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        data = path.read_bytes()
        with zipfile.ZipFile(path) as archive:
            cd_offset = archive.start_dir
        end = data.rindex(b"PK\x05\x06")
        record = bytearray(data[end:])
        record[16:20] = (cd_offset + 16).to_bytes(4, "little")  # shift the directory offset
        path.write_bytes(data[:cd_offset] + b"hidden payload!!" + data[cd_offset:end] + record)
        refused(path, "central directory does not follow the last entry")

    def test_truncated_archive(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path)
        data = path.read_bytes()
        path.write_bytes(data[:100] + data[-22:])
        refused(path, "not a zip file|not a valid zip")

    def test_data_descriptors_are_refused(self, tmp_path: Path) -> None:
        path = make_zip_with_data_descriptors(
            tmp_path / "demo-1.0-py3-none-any.whl", wheel_members()
        )
        assert zipfile.ZipFile(path).testzip() is None
        refused(path, "data descriptors")

    @pytest.mark.parametrize(
        ("method", "needs"),
        [(zipfile.ZIP_LZMA, "lzma"), (zipfile.ZIP_BZIP2, "bz2")],
        ids=["lzma", "bzip2"],
    )
    def test_only_stored_and_deflate(self, tmp_path: Path, method: int, needs: str) -> None:
        pytest.importorskip(needs)
        path = make_wheel(tmp_path, member_compression={"demo/__init__.py": method})
        refused(path, "unsupported compression method")

    def test_encrypted_member(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, compression=zipfile.ZIP_STORED)
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            cd_offset = archive.start_dir
        data[cd_offset + 8] |= 0x01  # general purpose flag bit 0 of the first entry
        path.write_bytes(bytes(data))
        refused(path, "encrypted")

    def test_lying_size_cannot_inflate_the_read(self, tmp_path: Path) -> None:
        # METADATA says it is 10 bytes; zipfile stops there and the CRC check fails.
        raw = metadata_text("demo", "1.0").encode()
        path = make_wheel(tmp_path, metadata=raw, compression=zipfile.ZIP_DEFLATED)
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("demo-1.0.dist-info/METADATA")
        size = info.file_size.to_bytes(4, "little")
        packed = info.compress_size.to_bytes(4, "little") + size
        patch_bytes(
            path, packed, info.compress_size.to_bytes(4, "little") + (10).to_bytes(4, "little")
        )
        refused(path, "cannot read")


class TestWheelMemberNames:
    @pytest.mark.parametrize(
        ("member", "message"),
        [
            ("../evil.py", "'..' path component"),
            ("demo/../../evil.py", "'..' path component"),
            ("/etc/evil.py", "absolute path"),
            ("C:/evil.py", "absolute path"),
            ("demo\\..\\evil.py", "backslash"),
            ("demo/evil\x01.py", "control characters"),
            ("demo/evil\x7f.py", "control characters"),
        ],
    )
    def test_hostile_names(self, tmp_path: Path, member: str, message: str) -> None:
        refused(make_wheel(tmp_path, extra_members={member: "x"}), message)

    def test_nul_in_a_name(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={"demo/evil_x.py": "x"})
        patch_bytes(path, b"demo/evil_x.py", b"demo/evil\x00x.py")
        refused(path, "control characters")

    def test_duplicate_names(self, tmp_path: Path) -> None:
        items = [*wheel_members().items(), ("demo/__init__.py", "EVIL = 1\n")]
        refused(make_zip(tmp_path / "demo-1.0-py3-none-any.whl", items), "duplicate archive member")


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wheel with 200 MiB of zeros streamed into one deflated member (about 200 KiB)."""
    yield make_wheel_with_zeros(tmp_path_factory.mktemp("bomb"), size=200 * MiB)


class TestWheelLimits:
    def test_zip_bomb_is_refused_quickly_with_bounded_memory(self, zip_bomb: Path) -> None:
        assert zip_bomb.stat().st_size < 2 * MiB
        bounded(
            lambda: refused(zip_bomb, "compression ratio of 50", error=TooLarge),
            seconds=2,
            peak_mib=16,
        )

    def test_single_member_zip_bomb(self, tmp_path: Path) -> None:
        path = make_zip_bomb(tmp_path / "demo-1.0-py3-none-any.whl", member="zeros", size=100 * MiB)
        refused(path, "compression ratio", error=TooLarge)

    def test_big_but_compressible_below_64_mib_is_fine(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={"demo/zeros.bin": bytes(8 * MiB)})
        assert read(path)

    def test_declared_size_over_the_total_limit(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={"demo/data.bin": bytes(4096)})
        refused(path, "declares", error=TooLarge, limits=ArchiveLimits(max_total_uncompressed=4096))

    def test_member_declaring_a_huge_size(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={"demo/data.bin": b"x" * 1000})
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("demo/data.bin")
        old = info.compress_size.to_bytes(4, "little") + info.file_size.to_bytes(4, "little")
        new = info.compress_size.to_bytes(4, "little") + (0xFFFFFFF0).to_bytes(4, "little")
        patch_bytes(path, old, new)
        bounded(lambda: refused(path, "compression ratio", error=TooLarge), seconds=2, peak_mib=8)

    def test_too_many_members(self, tmp_path: Path) -> None:
        path = make_wheel(tmp_path, extra_members={f"demo/m{i}.py": "" for i in range(10)})
        refused(path, "more than 5 entries", error=TooLarge, limits=ArchiveLimits(max_members=5))

    def test_metadata_over_the_cap(self, tmp_path: Path) -> None:
        raw = metadata_text("demo", "1.0", description="x" * 5000).encode()
        path = make_wheel(tmp_path, metadata=raw)
        refused(
            path,
            "larger than 1000 bytes",
            error=TooLarge,
            limits=ArchiveLimits(max_metadata_size=1000),
        )


class TestZipSdist:
    def members(self, top: str = "demo-1.0") -> dict[str, bytes | str]:
        return {
            f"{top}/PKG-INFO": metadata_text("demo", "1.0", metadata_version="2.2"),
            f"{top}/pyproject.toml": "",
        }

    def test_reads_pkg_info(self, tmp_path: Path) -> None:
        path = make_zip(tmp_path / "demo-1.0.zip", self.members())
        result = read_core_metadata(path, parse_dist_filename(path.name, allow_zip_sdist=True))
        assert result.member == "demo-1.0/PKG-INFO"
        assert result.data == self.members()["demo-1.0/PKG-INFO"].encode()  # type: ignore[union-attr]

    def test_missing_pkg_info(self, tmp_path: Path) -> None:
        path = make_zip(tmp_path / "demo-1.0.zip", {"demo-1.0/setup.py": ""})
        refused(path, "PKG-INFO not found at demo-1.0/PKG-INFO")

    def test_two_top_level_directories(self, tmp_path: Path) -> None:
        members = {**self.members(), "other/file": ""}
        refused(make_zip(tmp_path / "demo-1.0.zip", members), "exactly one top-level directory")

    def test_zip_rules_apply(self, tmp_path: Path) -> None:
        members = {**self.members(), "demo-1.0/../evil": ""}
        refused(make_zip(tmp_path / "demo-1.0.zip", members), "'..' path component")


# ---------------------------------------------------------------------------------- sdists


class TestSdistHappyPath:
    def test_returns_the_exact_pkg_info_bytes(self, tmp_path: Path) -> None:
        raw = metadata_text("Foo.Bar", "1.0", metadata_version="2.2", newline="\r\n").encode()
        path = make_sdist(tmp_path, "Foo.Bar", "1.0", pkg_info=raw)
        result = read_core_metadata(path, parse_dist_filename(path.name))
        assert result.data == raw
        assert result.member == "foo_bar-1.0/PKG-INFO"

    @pytest.mark.parametrize(
        "tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]
    )
    def test_tar_formats(self, tmp_path: Path, tar_format: int) -> None:
        assert read(make_sdist(tmp_path, tar_format=tar_format)).startswith(b"Metadata-Version")

    def test_links_inside_the_archive_are_fine(self, tmp_path: Path) -> None:
        path = make_sdist(
            tmp_path,
            extra_members=[
                TarMember("demo-1.0/src/link", type=tarfile.SYMTYPE, linkname="../pyproject.toml"),
                TarMember(
                    "demo-1.0/hard", type=tarfile.LNKTYPE, linkname="demo-1.0/pyproject.toml"
                ),
            ],
        )
        assert read(path)

    def test_dot_slash_prefixed_names(self, tmp_path: Path) -> None:
        members = [
            TarMember(".", type=tarfile.DIRTYPE),
            TarMember("./demo-1.0/PKG-INFO", metadata_text("demo", "1.0")),
        ]
        path = write_tar_gz(tmp_path / "demo-1.0.tar.gz", members)
        assert read(path).startswith(b"Metadata-Version")

    def test_long_names_in_pax_headers(self, tmp_path: Path) -> None:
        long = "demo-1.0/" + "d" * 200 + "/file.py"
        assert read(make_sdist(tmp_path, extra_members=[TarMember(long, "x")]))


class TestSdistStructure:
    def test_missing_pkg_info(self, tmp_path: Path) -> None:
        refused(make_sdist(tmp_path, omit_pkg_info=True), "PKG-INFO not found at demo-1.0/PKG-INFO")

    def test_nested_pkg_info_does_not_count(self, tmp_path: Path) -> None:
        path = make_sdist(
            tmp_path,
            omit_pkg_info=True,
            extra_members=[TarMember("demo-1.0/sub/PKG-INFO", metadata_text("demo", "1.0"))],
        )
        refused(path, "PKG-INFO not found")

    @pytest.mark.parametrize(
        "member",
        [
            TarMember("demo-1.0/PKG-INFO", type=tarfile.SYMTYPE, linkname="pyproject.toml"),
            TarMember(
                "demo-1.0/PKG-INFO", type=tarfile.LNKTYPE, linkname="demo-1.0/pyproject.toml"
            ),
            TarMember("demo-1.0/PKG-INFO", type=tarfile.DIRTYPE),
        ],
        ids=["symlink", "hardlink", "directory"],
    )
    def test_pkg_info_must_be_a_regular_file(self, tmp_path: Path, member: TarMember) -> None:
        refused(make_sdist(tmp_path, pkg_info=member), "must be a regular file")

    def test_two_top_level_directories(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path, extra_members=[TarMember("other-1.0/x.py", "x")])
        refused(path, "exactly one top-level directory")

    def test_duplicate_pkg_info(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path, extra_members=[TarMember("demo-1.0/PKG-INFO", "Name: evil\n")])
        refused(path, "duplicate archive member")

    def test_empty_archive(self, tmp_path: Path) -> None:
        refused(write_tar_gz(tmp_path / "demo-1.0.tar.gz", []), "empty|not a valid tar.gz")


class TestSdistHostileMembers:
    @pytest.mark.parametrize(
        ("member", "message"),
        [
            (TarMember("demo-1.0/../evil", "x"), "'..' path component"),
            (TarMember("../evil", "x"), "'..' path component"),
            (TarMember("/etc/evil", "x"), "absolute path"),
            (TarMember("demo-1.0/a\\..\\..\\evil", "x"), "backslash"),
            (TarMember("demo-1.0/evil\x1b[31m", "x"), "control characters"),
            (TarMember("demo-1.0/tty", type=tarfile.CHRTYPE), "device or FIFO"),
            (TarMember("demo-1.0/disk", type=tarfile.BLKTYPE), "device or FIFO"),
            (TarMember("demo-1.0/pipe", type=tarfile.FIFOTYPE), "device or FIFO"),
            (TarMember("demo-1.0/odd", type=b"Z"), "special"),
            (
                TarMember("demo-1.0/link", type=tarfile.SYMTYPE, linkname="../../etc/passwd"),
                "points outside",
            ),
            (
                TarMember("demo-1.0/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
                "absolute path",
            ),
            (
                TarMember("demo-1.0/hard", type=tarfile.LNKTYPE, linkname="../outside"),
                "points outside",
            ),
            (
                TarMember("demo-1.0/a/b/link", type=tarfile.SYMTYPE, linkname="../../../../x"),
                "points outside",
            ),
            (
                TarMember("demo-1.0/link", type=tarfile.SYMTYPE, linkname="a\\..\\..\\x"),
                "backslash",
            ),
        ],
    )
    def test_refused(self, tmp_path: Path, member: TarMember, message: str) -> None:
        refused(make_sdist(tmp_path, extra_members=[member]), message)

    def test_member_below_a_symlink(self, tmp_path: Path) -> None:
        # Each link alone stays inside, but `demo-1.0/up/up2/evil` would land outside.
        members = [
            TarMember("demo-1.0/up", type=tarfile.SYMTYPE, linkname="."),
            TarMember("demo-1.0/up/up2", type=tarfile.SYMTYPE, linkname=".."),
            TarMember("demo-1.0/up/up2/evil", "x"),
        ]
        refused(make_sdist(tmp_path, extra_members=members), "lies below the symlink")

    def test_gnu_sparse_member(self, tmp_path: Path) -> None:
        member = TarMember("demo-1.0/sparse.bin", type=tarfile.GNUTYPE_SPARSE)
        path = make_sdist(tmp_path, extra_members=[member], tar_format=tarfile.GNU_FORMAT)
        refused(path, "sparse member")

    def test_pax_sparse_member(self, tmp_path: Path) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            pkg = metadata_text("demo", "1.0").encode()
            info = tarfile.TarInfo("demo-1.0/PKG-INFO")
            info.size = len(pkg)
            archive.addfile(info, io.BytesIO(pkg))
            info = tarfile.TarInfo("demo-1.0/sparse.bin")
            info.size = 4
            info.pax_headers = {"GNU.sparse.map": "0,4", "GNU.sparse.size": "1000000"}
            archive.addfile(info, io.BytesIO(b"data"))
        path = tmp_path / "demo-1.0.tar.gz"
        path.write_bytes(gzip.compress(buffer.getvalue()))
        refused(path, "sparse member")


class TestSdistEncoding:
    def test_plain_tar_named_tar_gz(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path)
        path.write_bytes(gzip.decompress(path.read_bytes()))
        refused(path, "not a gzip-compressed tar file")

    def test_truncated_gzip(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path)
        path.write_bytes(path.read_bytes()[:-20])
        refused(path, "not a valid tar.gz")

    def test_gzip_of_not_a_tar(self, tmp_path: Path) -> None:
        path = tmp_path / "demo-1.0.tar.gz"
        path.write_bytes(gzip.compress(b"hello world" * 100))
        refused(path, "not a valid tar.gz")

    def test_trailing_garbage_after_gzip(self, tmp_path: Path) -> None:
        refused(make_sdist(tmp_path, trailing=b"garbage!" * 10), "not a valid tar.gz")

    def test_tar_gz_zip_polyglot(self, tmp_path: Path) -> None:
        zipped = make_zip(tmp_path / "x.zip", {"demo-1.0/PKG-INFO": "evil"}).read_bytes()
        path = make_sdist(tmp_path, trailing=zipped)
        refused(path, "both a tar.gz and a zip")


class TestSdistLimits:
    def test_tar_bomb_is_refused_quickly_with_bounded_memory(self, tmp_path: Path) -> None:
        path = make_tar_bomb(tmp_path / "demo-1.0.tar.gz", top="demo-1.0", size=100 * MiB)
        assert path.stat().st_size < 2 * MiB
        bounded(
            lambda: refused(path, "decompresses to more than", error=TooLarge),
            seconds=5,
            peak_mib=16,
        )

    def test_absolute_budget(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path, extra_members=[TarMember("demo-1.0/data", bytes(MiB))])
        limits = ArchiveLimits(max_sdist_uncompressed=MiB // 2)
        refused(path, "decompresses to more than", error=TooLarge, limits=limits)

    def test_compressible_content_below_the_ratio_floor_is_fine(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path, extra_members=[TarMember("demo-1.0/zeros", bytes(8 * MiB))])
        assert read(path)

    def test_too_many_members(self, tmp_path: Path) -> None:
        members = [TarMember(f"demo-1.0/m{i}.py", "") for i in range(10)]
        path = make_sdist(tmp_path, extra_members=members)
        refused(path, "more than 5 entries", error=TooLarge, limits=ArchiveLimits(max_members=5))

    def test_pkg_info_over_the_cap(self, tmp_path: Path) -> None:
        path = make_sdist(tmp_path, pkg_info=metadata_text("demo", "1.0", description="x" * 5000))
        limits = ArchiveLimits(max_metadata_size=1000)
        refused(path, "larger than 1000 bytes", error=TooLarge, limits=limits)

    def test_huge_pax_header(self, tmp_path: Path) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            info = tarfile.TarInfo("demo-1.0/PKG-INFO")
            info.pax_headers = {"comment": "x" * (2 * MiB)}
            archive.addfile(info, io.BytesIO(b""))
        path = tmp_path / "demo-1.0.tar.gz"
        path.write_bytes(gzip.compress(buffer.getvalue()))
        refused(path, "extended header is larger than", error=TooLarge)

    def test_huge_gnu_long_name(self, tmp_path: Path) -> None:
        long = "demo-1.0/" + "d" * 3000
        path = make_sdist(
            tmp_path, extra_members=[TarMember(long, "x")], tar_format=tarfile.GNU_FORMAT
        )
        limits = ArchiveLimits(max_tar_header_size=1024)
        refused(path, "extended header is larger than", error=TooLarge, limits=limits)


def test_nothing_is_written_to_disk(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = make_sdist(inbox, extra_members=[TarMember("demo-1.0/../evil", "x")])
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InvalidInput):
        read(path)
    assert sorted(tmp_path.rglob("*")) == before
