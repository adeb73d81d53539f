"""A cold proxy file's readers: they get every byte but the last as it arrives, and the last
one as soon as all of them matched the listing, without waiting for the blob to be stored."""

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


def _fetch(tmp_path: Path) -> FileFetch:
    fetch = FileFetch(hashlib.sha256(DATA).hexdigest(), len(DATA), tmp_path)
    fetch.append(DATA)
    fetch.written = len(DATA)
    fetch.started.set()
    return fetch


async def _read(fetch: FileFetch, into: bytearray) -> None:
    async for chunk in _follow(fetch, NoBlobs(), "key"):  # type: ignore[arg-type]
        into += chunk


async def test_the_last_byte_waits_for_verification_not_for_storage(tmp_path: Path) -> None:
    fetch = _fetch(tmp_path)
    received = bytearray()
    reader = asyncio.create_task(_read(fetch, received))
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert bytes(received) == DATA[:-1]  # everything but the last byte, while unverified
    fetch.verified = True
    fetch.progress()
    await asyncio.wait_for(reader, 5)
    assert bytes(received) == DATA
    assert not fetch.finished.is_set()  # the blob is still being stored and recorded
    fetch.close()


async def test_a_failure_after_verification_does_not_cut_the_body(tmp_path: Path) -> None:
    fetch = _fetch(tmp_path)
    fetch.verified = True
    fetch.error = OSError("no space left on device")  # the commit failed: not cached
    fetch.finished.set()
    fetch.progress()
    # A reader already following gets the whole (verified) body...
    received = bytearray()
    fd_reader = _follow(fetch, NoBlobs(), "key")  # type: ignore[arg-type]
    fetch.finished.clear()  # (it started before the fetch ended)
    first = await fd_reader.__anext__()
    fetch.finished.set()
    received += first
    async for chunk in fd_reader:
        received += chunk
    assert bytes(received) == DATA
    fetch.close()


async def test_bytes_that_do_not_match_never_complete_the_body(tmp_path: Path) -> None:
    fetch = _fetch(tmp_path)
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
