"""How file bytes leave the server (docs/adr/0007-file-bytes-by-sendfile.md): whole files on
disk go by sendfile through the ASGI path-send extension, small bodies in one message, ranges
and HEAD as before. Over real sockets against the session `wheelyard serve` process.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.cli import residency
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server_fixtures import RunningServer, unique_project

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big(
    wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, bytes]:
    """The URL and bytes of a 24 MiB wheel in `default/local` (far above one read)."""
    name = unique_project("bytes-big")
    wheel = make_wheel(tmp_path_factory.mktemp("big"), name, "1.0")
    with zipfile.ZipFile(wheel, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("bytes_big/data.bin", hashlib.sha256(b"x").digest() * (24 * MiB // 32))
    response = wheelyard_server.upload(wheel)
    assert response.status_code == 200, response.text
    project = canonicalize_name(name)
    return f"{wheelyard_server.local}/{project}/1.0/{wheel.name}", wheel.read_bytes()


def test_a_large_file_arrives_whole_even_to_a_slow_reader(big: tuple[str, bytes]) -> None:
    url, data = big
    received = hashlib.sha256()
    size = 0
    with httpx.stream("GET", url, timeout=120) as response:
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(data)
        assert response.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        for chunk in response.iter_raw(256 * 1024):
            received.update(chunk)
            size += len(chunk)
            if size < 4 * MiB:
                time.sleep(0.02)  # let the socket fill up: the server must wait, not fail
    assert size == len(data)
    assert received.hexdigest() == hashlib.sha256(data).hexdigest()


def test_ranges_and_head_of_a_large_file(big: tuple[str, bytes]) -> None:
    url, data = big
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    middle = httpx.get(url, headers={"Range": "bytes=5000000-5999999"}, timeout=30)
    assert middle.status_code == 206
    assert middle.content == data[5_000_000:6_000_000]
    tail = httpx.get(url, headers={"Range": "bytes=-22"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-22:]


def test_a_client_that_goes_away_mid_file_does_not_hurt_the_next_request(
    big: tuple[str, bytes], wheelyard_server: RunningServer
) -> None:
    url, data = big
    path = url.removeprefix(wheelyard_server.url)
    host, port = wheelyard_server.url.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    # Kept-alive connections still get whole files and small answers after those.
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            assert client.get(url).content == data
            assert client.get(f"{wheelyard_server.url}/healthz").status_code == 200


def test_small_files_and_metadata_are_served_whole(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project("bytes-small")
    wheel = make_wheel(tmp_path, name, "1.0")
    assert wheelyard_server.upload(wheel).status_code == 200
    project = canonicalize_name(name)
    url = f"{wheelyard_server.local}/{project}/1.0/{wheel.name}"
    with httpx.Client(timeout=30) as client:
        for _ in range(3):  # the second and third from memory
            response = client.get(url)
            assert response.status_code == 200 and response.content == wheel.read_bytes()
            metadata = client.get(url + ".metadata")
            assert metadata.status_code == 200
            assert metadata.content.startswith(b"Metadata-Version:")
            assert metadata.headers["content-length"] == str(len(metadata.content))


def test_a_file_arrives_whole_whether_or_not_the_page_cache_holds_it(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    """Cached bytes are sent from the event loop, others from a thread (they may wait for the
    disk): both give the whole file, in turns on one kept-alive connection."""
    name = unique_project("bytes-cached")
    wheel = make_wheel(tmp_path, name, "1.0")
    with zipfile.ZipFile(wheel, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("bytes_cached/data.bin", hashlib.sha256(b"y").digest() * (3 * MiB // 32))
    assert wheelyard_server.upload(wheel).status_code == 200
    data = wheel.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    (blob,) = wheelyard_server.process.data_dir.rglob(sha256)
    url = f"{wheelyard_server.local}/{canonicalize_name(name)}/1.0/{wheel.name}"
    with httpx.Client(timeout=60) as client:
        for evicted in (True, False, True, False):
            fd = os.open(blob, os.O_RDONLY)
            try:
                if evicted:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                assert residency.cached(fd, 0, len(data)) is not evicted
            finally:
                os.close(fd)
            response = client.get(url)
            assert response.status_code == 200
            assert hashlib.sha256(response.content).hexdigest() == sha256
