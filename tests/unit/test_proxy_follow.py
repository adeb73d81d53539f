"""A cold proxy file's readers: they get every byte but the last as it arrives, and the last
one only once the bytes matched the listing (storing and recording them come after)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from wheelyard.proxy_cache.files import FileFetch, _follow
from wheelyard.shared.errors import IntegrityFailure, UpstreamError

DATA = bytes(range(256)) * 4096  # 1 MiB


class NoBlobs:
    def open(self, key: str) -> object:
        raise AssertionError("a reader of a running fetch reads the spool, not the store")


async def _fetch(tmp_path: Path, *, staged: bool = False) -> FileFetch:
    fetch = FileFetch(hashlib.sha256(DATA).hexdigest(), len(DATA), tmp_path, staged=staged)
    await fetch.open()
    await fetch.append(DATA)
    await fetch.spooled()
    assert fetch.written == len(DATA)
    fetch.started.set()
    return fetch


async def _read(fetch: FileFetch, into: bytearray) -> None:
    async for chunk in _follow(fetch, NoBlobs(), "key"):  # type: ignore[arg-type]
        into += chunk


async def test_every_byte_but_the_last_arrives_before_the_fetch_ends(tmp_path: Path) -> None:
    fetch = await _fetch(tmp_path)
    received = bytearray()
    reader = asyncio.create_task(_read(fetch, received))
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert bytes(received) == DATA[:-1]  # everything but the last byte, while unverified
    fetch.verified = True  # the fetch is still storing and recording: not finished
    fetch.progress()
    await asyncio.wait_for(reader, 5)
    assert bytes(received) == DATA
    fetch.close()


async def test_a_failure_after_the_bytes_were_verified_does_not_cut_the_body(
    tmp_path: Path,
) -> None:
    fetch = await _fetch(tmp_path)
    fetch.verified = True
    fetch.error = UpstreamError("The file could not be stored.")  # e.g. the disk is full
    received = bytearray()
    reader = asyncio.create_task(_read(fetch, received))
    await asyncio.sleep(0)
    fetch.finished.set()
    fetch.progress()
    await asyncio.wait_for(reader, 5)
    assert bytes(received) == DATA
    fetch.close()


async def test_bytes_that_do_not_match_never_complete_the_body(tmp_path: Path) -> None:
    fetch = await _fetch(tmp_path)
    received = bytearray()
    reader = asyncio.create_task(_read(fetch, received))
    await asyncio.sleep(0.1)
    fetch.error = IntegrityFailure("expected sha256 ..., received another")
    fetch.finished.set()
    fetch.progress()
    with pytest.raises(UpstreamError, match="does not match"):
        await asyncio.wait_for(reader, 5)
    assert len(received) == len(DATA) - 1
    fetch.close()


@pytest.mark.parametrize("staged", [False, True])
async def test_the_spool_is_hashed_as_written_and_leaves_nothing_behind(
    tmp_path: Path, staged: bool
) -> None:
    fetch = await _fetch(tmp_path, staged=staged)
    assert fetch.spooled_sha256 == hashlib.sha256(DATA).hexdigest()
    # A staged spool keeps its name (so that the store can adopt it), another has none.
    assert list(tmp_path.iterdir()) == ([fetch.staged_path] if staged else [])
    fetch.close()  # not adopted: nothing is left
    assert list(tmp_path.iterdir()) == []
