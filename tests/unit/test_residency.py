"""`wheelyard.cli.residency`: whether a file's bytes are in the page cache (cachestat(2))."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from wheelyard.cli import residency


def _file(path: Path, size: int) -> int:
    path.write_bytes(os.urandom(size))
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)  # written back: evictable
    return fd


def _kernel() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def test_linux_from_6_5_answers() -> None:
    """cachestat(2) came with Linux 6.5; the machines we run on (and CI's) are newer."""
    assert platform.system() == "Linux" and _kernel() >= (6, 5)
    assert residency.available()


def test_read_bytes_are_cached_and_evicted_ones_are_not(tmp_path: Path) -> None:
    fd = _file(tmp_path / "f", 3_000_000)
    try:
        os.pread(fd, 3_000_000, 0)
        assert residency.cached(fd, 0, 3_000_000)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert not residency.cached(fd, 0, 3_000_000)
        assert not residency.cached(fd, 0, 1)
        os.pread(fd, 1, 0)  # the first page only (read-ahead may bring a little more)
        assert residency.cached(fd, 0, 1)
        assert not residency.cached(fd, 0, 3_000_000)
        assert not residency.cached(fd, 2_990_000, 10_000)
    finally:
        os.close(fd)


def test_nothing_to_send_or_a_bad_descriptor_is_not_called_cached(tmp_path: Path) -> None:
    fd = _file(tmp_path / "f", 10)
    os.pread(fd, 10, 0)
    assert residency.cached(fd, 0, 10)
    assert not residency.cached(fd, 0, 0)
    os.close(fd)
    assert not residency.cached(fd, 0, 10)  # EBADF: unknown, so not cached
    assert residency.available()  # an error about the descriptor is not "no such call"


def test_without_the_call_nothing_is_called_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel without cachestat (or a sandbox that filters it): always "not known to be
    cached", so callers keep to the path that may wait for the disk."""
    fd = _file(tmp_path / "f", 10)
    try:
        os.pread(fd, 10, 0)
        monkeypatch.setattr(residency, "_syscall", None)
        assert not residency.available()
        assert not residency.cached(fd, 0, 10)
    finally:
        os.close(fd)
