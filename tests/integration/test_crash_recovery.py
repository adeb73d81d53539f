"""A server killed with SIGKILL mid-upload and mid-proxied-download comes back clean (issue 9,
"Done when"): nothing half-written is served and no temporary file is left.

One real `wheelyard serve` process (SQLite, blobs on disk) proxies a local upstream that sends a
file slowly. While a client is half-way through uploading a wheel and another is half-way
through downloading the proxied file, the process group is killed with SIGKILL. A new process
on the same data dir must then: leave no temporary file (upload spool, blob writes, proxy
spool); hold no file row whose blob is missing or differs; serve the proxied file complete,
fetched again, never the cut-off bytes; and accept the interrupted upload again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.proxy_env import ADMIN, start_server
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import RunningServer, unique_project
from wheelyard.testing.upstream import LocalUpstream

MiB = 1024 * 1024
BOUNDARY = "crash-boundary"


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _temp_dirs(data: Path) -> list[Path]:
    return [data / "tmp" / "uploads", data / "blobs" / "tmp", data / "proxy-spool"]


def _start_upload(server: ServerProcess, wheel: Path, project: str) -> socket.socket:
    """Send the head and about half of a legacy upload of `wheel`, then stop sending."""
    data = wheel.read_bytes()
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": project,
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    body = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    body += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{wheel.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += data + f"\r\n--{BOUNDARY}--\r\n".encode()
    auth = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    head = (
        "POST /repositories/default/local/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(head + body[: len(body) // 2])
    return sock


def _start_download(server: ServerProcess, url: str) -> socket.socket:
    """GET `url` and read the first bytes of the answer, then stop reading."""
    path = url.split(str(server.port), 1)[1]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 "), first[:200]
    return sock


def _kill(server: ServerProcess) -> None:
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)


def _rows_without_their_bytes(data: Path) -> list[str]:
    """Every file row (live or deleted) whose blob is missing or is not its bytes."""
    with sqlite3.connect(data / "wheelyard.db") as db:
        rows = db.execute("SELECT filename, blob_key, sha256, size FROM files").fetchall()
    bad = []
    for filename, key, sha256, size in rows:
        blob = data / "blobs" / key
        if not blob.is_file():
            bad.append(f"{filename}: no blob")
            continue
        content = blob.read_bytes()
        if len(content) != size or hashlib.sha256(content).hexdigest() != sha256:
            bad.append(f"{filename}: blob differs from its row")
    return bad


def test_sigkill_mid_upload_and_mid_proxy_download_leaves_nothing_half_written(
    tmp_path: Path, local_upstream: LocalUpstream
) -> None:
    data = tmp_path / "server"
    project = local_upstream.add_project(unique_project("crash"), ("1.0",), size_bytes=4 * MiB)
    proxied = project.files[0]
    local_upstream.drip(proxied, 0.2)  # 64 KiB every 0.2 s: about 13 s for the whole file
    uploaded_name = unique_project("upload")
    wheel = make_wheel(
        tmp_path, uploaded_name, "1.0", extra_members={"payload.bin": os.urandom(8 * MiB)}
    )
    # A file stored before the crash must come through intact.
    kept = make_wheel(tmp_path, unique_project("kept"), "1.0")

    server = start_server(data, local_upstream.simple_url)
    try:
        assert RunningServer(server, server.url).upload(kept).status_code == 200
        page = httpx.get(
            f"{server.url}/repositories/default/pypi/simple/{project.normalized}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            timeout=30,
        )
        assert page.status_code == 200, page.text
        url = {f["filename"]: f["url"] for f in page.json()["files"]}[proxied.filename]

        upload = _start_upload(server, wheel, uploaded_name)
        download = _start_download(server, url)
        _wait_for(lambda: bool(_files_in(data / "tmp" / "uploads")), "the upload spool")
        _wait_for(lambda: bool(_files_in(data / "blobs" / "tmp")), "the proxied blob write")
        _kill(server)
        upload.close()
        download.close()
    finally:
        server.stop()
    # The crash did leave temporary files behind: the restart has something to clean.
    assert _files_in(data / "tmp" / "uploads") and _files_in(data / "blobs" / "tmp")

    local_upstream.heal()
    hits_before = local_upstream.file_hits(proxied.filename)
    restarted = start_server(data, local_upstream.simple_url)
    try:
        left = {str(d.relative_to(data)): _files_in(d) for d in _temp_dirs(data)}
        assert all(not names for names in left.values()), left
        assert _rows_without_their_bytes(data) == []
        # The cut-off proxied file was never stored: it is fetched again and served whole.
        assert (
            not (data / "blobs" / "sha256" / proxied.sha256[:2] / proxied.sha256[2:4])
            .joinpath(proxied.sha256)
            .exists()
        )
        again = httpx.get(url.replace(str(server.port), str(restarted.port)), timeout=60)
        assert again.status_code == 200
        assert again.content == proxied.data
        assert local_upstream.file_hits(proxied.filename) == hits_before + 1
        # The interrupted upload left no trace, and can simply be made again.
        running = RunningServer(restarted, restarted.url)
        simple = f"{restarted.url}/repositories/default/local/simple/"
        missing = httpx.get(f"{simple}{canonicalize_name(uploaded_name)}/", timeout=30)
        assert missing.status_code == 404
        assert running.upload(wheel).status_code == 200
        served = httpx.get(
            f"{restarted.url}/repositories/default/local/{canonicalize_name(uploaded_name)}"
            f"/1.0/{wheel.name}",
            timeout=60,
        )
        assert served.content == wheel.read_bytes()
        kept_url = (
            f"{restarted.url}/repositories/default/local/"
            f"{canonicalize_name(kept.name.split('-')[0])}/1.0/{kept.name}"
        )
        assert httpx.get(kept_url, timeout=30).content == kept.read_bytes()
        assert _rows_without_their_bytes(data) == []
    finally:
        restarted.stop()
