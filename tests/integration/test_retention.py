"""Retention of proxy caches, garbage collection and the storage report, on real processes:
a `wheelyard serve` proxying a local upstream, the `wheelyard` CLI, and real installers
with the machine's package sources hidden."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.clients import (
    installed_version,
    make_venv,
    pip_install,
    uv_pip_install,
)
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi
from wheelyard.testing.proxy_env import ADMIN, ProxyEnv, start_server
from wheelyard.testing.server import clean_env
from wheelyard.testing.server_fixtures import unique_name, unique_project
from wheelyard.testing.uploads import upload_file
from wheelyard.testing.upstream import LocalUpstream, UpstreamProject

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def _cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wheelyard.cli", *args],
        env=clean_env(WHEELYARD_DATA_DIR=str(data_dir), **env),
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _sql(data_dir: Path, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "wheelyard.db", timeout=30) as conn:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
    return rows


def _cached(data_dir: Path, repo: str = "pypi") -> dict[str, int]:
    rows = _sql(
        data_dir,
        "SELECT f.filename, f.size FROM proxy_files f JOIN repositories r "
        "ON r.id = f.repository_id WHERE r.name = ?",
        (repo,),
    )
    return {name: size for name, size in rows}


def _cached_eventually(data_dir: Path, expected: set[str], timeout: float = 15) -> set[str]:
    """The repository's records once they are `expected` (or after `timeout` seconds): a
    proxied file is recorded just after its last byte reached the client, off its path."""
    deadline = time.monotonic() + timeout
    while (found := set(_cached(data_dir))) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _set_last_download(data_dir: Path, filename_prefix: str, when: datetime) -> None:
    stamp = when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    _sql(
        data_dir,
        "UPDATE proxy_files SET last_downloaded = ? WHERE filename LIKE ?",
        (stamp, filename_prefix + "%"),
    )


def _urls(server: str, project: UpstreamProject, repo: str = "pypi") -> dict[str, str]:
    page = httpx.get(
        f"{server}/repositories/default/{repo}/simple/{project.normalized}/",
        headers={"Accept": JSON_V1},
        timeout=30,
    )
    assert page.status_code == 200, page.text
    return {f["filename"]: f["url"] for f in page.json()["files"]}


def _download_all(server: str, project: UpstreamProject) -> None:
    urls = _urls(server, project)
    for f in project.files:
        got = httpx.get(urls[f.filename], timeout=30)
        assert got.status_code == 200 and got.content == f.data
        if f.metadata is not None:
            meta = httpx.get(urls[f.filename] + ".metadata", timeout=30)
            assert meta.status_code == 200 and meta.content == f.metadata


def _files_of(project: UpstreamProject, version: str) -> set[str]:
    names = set()
    for f in project.files:
        if f"-{version}-" in f.filename or f.filename.endswith(f"-{version}.tar.gz"):
            names.add(f.filename)
            if f.metadata is not None:
                names.add(f.filename + ".metadata")
    return names


def _storage(server: str) -> dict[str, Any]:
    report = httpx.get(f"{server}/api/v1/storage", auth=ADMIN, timeout=60)
    assert report.status_code == 200, report.text
    return dict(report.json())


def _entry(report: dict[str, Any], repository: str) -> dict[str, Any]:
    return next(e for e in report["repositories"] if e["repository"] == repository)


def _uv_install(index: str, target: Path, *requirements: str) -> Path:
    python = make_venv(target, with_pip=False)
    outcome = uv_pip_install(python, index, *requirements)
    assert outcome.succeeded(), outcome.describe()
    return python


def _pip_install(index: str, target: Path, *requirements: str) -> Path:
    python = make_venv(target, with_pip=True)
    outcome = pip_install(python, index, *requirements)
    assert outcome.succeeded(), outcome.describe()
    return python


def test_the_sweep_keeps_the_cache_under_its_limit_and_installs_still_work(
    local_upstream: LocalUpstream, tmp_path: Path
) -> None:
    upstream = local_upstream
    big = upstream.add_project(unique_project("lru"), ("1.0", "2.0", "3.0"), size_bytes=200_000)
    pinned = upstream.add_project(unique_project("pinned"), ("1.0", "2.0"), size_bytes=200_000)
    data = tmp_path / "data"
    server = start_server(
        data,
        upstream.simple_url,
        WHEELYARD_RETENTION_INTERVAL="1",
        WHEELYARD_ALLOW_PRIVATE_UPSTREAMS="true",
    )
    try:
        url = server.url
        _download_all(url, big)
        _download_all(url, pinned)
        everything = _files_of(big, "1.0") | _files_of(big, "2.0") | _files_of(big, "3.0")
        everything |= _files_of(pinned, "1.0") | _files_of(pinned, "2.0")
        assert _cached_eventually(data, everything) == everything
        # The administrator pins the older version of `pinned` (its .metadata goes with it).
        old_wheel = next(f.filename for f in pinned.files if "-1.0-" in f.filename)
        pin = _cli(data, "cache", "pin", "--repository", "default/pypi", old_wheel)
        assert pin.returncode == 0 and "pinned 1 file(s)" in pin.stdout, pin.stderr
        # `lru` 1.0 was downloaded recently, 2.0 long ago: 2.0 goes first.
        now = datetime.now(UTC)
        _set_last_download(data, big.files[0].filename, now)
        _set_last_download(data, big.files[1].filename, now - timedelta(days=10))
        sizes = _cached(data)
        protected = _files_of(big, "3.0") | _files_of(pinned, "1.0") | _files_of(pinned, "2.0")
        keep = protected | _files_of(big, "1.0")
        limit = sum(sizes[name] for name in keep)
        report = _storage(url)
        entry = _entry(report, "default/pypi")
        assert entry["cached_files"] == len(everything)
        assert entry["cached_bytes"] == sum(sizes.values())
        assert entry["pinned_files"] == 2  # the wheel and its metadata
        assert entry["pins"] == 1
        assert entry["pinned_bytes"] == sum(sizes[n] for n in _files_of(pinned, "1.0"))
        assert entry["next_sweep"]["remove_files"] == 0  # no limit yet
        changed = httpx.patch(
            f"{url}/api/v1/repositories/default/pypi",
            json={"cache_max_bytes": limit},
            auth=ADMIN,
            timeout=30,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["cache_max_bytes"] == limit
        deadline = time.monotonic() + 30
        while set(_cached(data)) != keep:
            assert time.monotonic() < deadline, (sorted(_cached(data)), server.log()[-3000:])
            time.sleep(0.3)
        assert sum(_cached(data).values()) <= limit
        after = _entry(_storage(url), "default/pypi")
        assert after["cached_bytes"] <= limit and after["pinned_files"] == 2
        assert after["next_sweep"]["remove_files"] == 0
        # The pruned version is still listed, through us, and fetched again when asked for.
        urls = _urls(url, big)
        second = big.files[1]
        assert urls[second.filename].startswith(url + "/repositories/default/pypi/")
        hits = upstream.file_hits(second.filename)
        python = _uv_install(
            f"{url}/repositories/default/pypi/simple/",
            tmp_path / "uv",
            f"{big.name}==2.0",
            f"{pinned.name}==1.0",
        )
        assert installed_version(python, big.name) == "2.0"
        assert installed_version(python, pinned.name) == "1.0"
        assert upstream.file_hits(second.filename) == hits + 1
        python = _pip_install(
            f"{url}/repositories/default/pypi/simple/", tmp_path / "pip", big.name, pinned.name
        )
        assert installed_version(python, big.name) == "3.0"
        assert installed_version(python, pinned.name) == "2.0"
        # The sweep goes on keeping the limit, and never the pinned file.
        deadline = time.monotonic() + 30
        while sum(_cached(data).values()) > limit:
            assert time.monotonic() < deadline, sorted(_cached(data))
            time.sleep(0.3)
        assert _files_of(pinned, "1.0") <= set(_cached(data))
    finally:
        server.stop()


def test_prune_on_the_command_line_drops_idle_files_and_dry_run_changes_nothing(
    local_upstream: LocalUpstream, tmp_path: Path
) -> None:
    project = local_upstream.add_project(unique_project("idle"), ("1.0", "2.0"), sdist=True)
    data = tmp_path / "data"
    server = start_server(
        data,
        local_upstream.simple_url,
        WHEELYARD_RETENTION_INTERVAL="0",
        WHEELYARD_ALLOW_PRIVATE_UPSTREAMS="true",
    )
    try:
        _download_all(server.url, project)
        changed = httpx.patch(
            f"{server.url}/api/v1/repositories/default/pypi",
            json={"cache_max_idle": "30d"},
            auth=ADMIN,
            timeout=30,
        )
        assert changed.status_code == 200 and changed.json()["cache_max_idle"] == "30d"
        old = datetime.now(UTC) - timedelta(days=31)
        for f in project.files:
            _set_last_download(data, f.filename, old)
        before = set(_cached(data))
        dry = _cli(data, "cache", "prune", "--repository", "default/pypi", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "default/pypi:" in dry.stdout and "would remove 3 files" in dry.stdout, dry.stdout
        assert set(_cached(data)) == before
        done = _cli(data, "cache", "prune", "--repository", "default/pypi")
        assert done.returncode == 0, done.stderr
        assert "removed 3 files" in done.stdout, done.stdout
        # Idle, but of the newest version: kept.
        assert set(_cached(data)) == _files_of(project, "2.0")
        # Pages stay whole; a pruned file comes back from the upstream.
        first = project.files[0]
        got = httpx.get(_urls(server.url, project)[first.filename], timeout=30)
        assert got.status_code == 200 and got.content == first.data
        assert local_upstream.file_hits(first.filename) == 2
    finally:
        server.stop()


def _blob(root: Path, data: bytes, *, age: timedelta) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "sha256" / digest[:2] / digest[2:4] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = time.time() - age.total_seconds()
    os.utime(path, (when, when))
    return path


def test_gc_removes_an_orphan_older_than_the_grace_period_and_keeps_a_fresh_one(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    blobs = data / "blobs"
    old = _blob(blobs, b"left behind by a crash two days ago", age=timedelta(days=2))
    fresh = _blob(blobs, b"an upload still committing", age=timedelta(minutes=5))
    report = _cli(data, "storage", "--json")
    assert report.returncode == 0, report.stderr
    assert '"unreferenced": 2' in report.stdout and '"deleted": 1' in report.stdout
    assert old.exists() and fresh.exists()  # a report changes nothing
    done = _cli(data, "cache", "prune", WHEELYARD_GC_GRACE="1d")
    assert done.returncode == 0, done.stderr
    assert "deleted 1" in done.stdout, done.stdout
    assert not old.exists()
    assert fresh.exists()
    again = _cli(data, "cache", "prune", WHEELYARD_GC_GRACE="1d")
    assert "deleted 0" in again.stdout and fresh.exists()
    # With a shorter grace the fresh one is old enough.
    short = _cli(data, "cache", "prune", WHEELYARD_GC_GRACE="1m")
    assert "deleted 1" in short.stdout, short.stdout
    assert not fresh.exists()


_HOLDING_SWEEP = """
import asyncio, sys
from datetime import timedelta
from pathlib import Path

from wheelyard.shared.backends import Backends
from wheelyard.shared.config import load_settings
from wheelyard.shared.db.migrate import upgrade_database_async
from wheelyard.shared.domain import maintenance

gate = Path(sys.argv[1])


class Paused:
    # The blob store, whose listing waits for the gate: the sweep is then mid-way.
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def list_blobs(self):
        print("sweeping", flush=True)
        while not gate.exists():
            await asyncio.sleep(0.05)
        async for blob in self.inner.list_blobs():
            yield blob


async def main():
    backends = await Backends.open(load_settings())
    try:
        await upgrade_database_async(backends.settings.effective_database_url)
        await maintenance.sweep(
            backends.sessions, Paused(backends.blobs), grace=timedelta(days=1)
        )
        print("done", flush=True)
    finally:
        await backends.close()


asyncio.run(main())
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings of the database the processes share: SQLite in the data dir, or a fresh
    Postgres database."""
    if request.param == "sqlite":
        yield {}
        return
    server, name = asyncio.run(create_database())
    try:
        yield {"WHEELYARD_DATABASE_URL": server.rsplit("/", 1)[0] + "/" + name}
    finally:
        asyncio.run(drop_database(server, name))


def test_two_sweeps_at_once_in_two_processes_do_not_both_run(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = _cli(data, "cache", "prune", **database_env)  # migrates the database
    assert first.returncode == 0, first.stderr
    script = tmp_path / "hold.py"
    script.write_text(_HOLDING_SWEEP)
    gate = tmp_path / "gate"
    holder = subprocess.Popen(
        [sys.executable, str(script), str(gate)],
        env=clean_env(WHEELYARD_DATA_DIR=str(data), **database_env),
        cwd=data,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "sweeping"
        busy = _cli(data, "cache", "prune", **database_env)
        assert busy.returncode == 3, (busy.stdout, busy.stderr)
        assert "another sweep is running" in busy.stderr
        assert "blobs:" not in busy.stdout  # it did nothing
        gate.touch()
        out, _ = holder.communicate(timeout=60)
        assert holder.returncode == 0 and "done" in out, out
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    after = _cli(data, "cache", "prune", **database_env)
    assert after.returncode == 0, after.stderr
    assert "blobs:" in after.stdout


def test_the_storage_report_and_retention_settings_are_for_administrators(
    proxy_env: ProxyEnv,
) -> None:
    url = proxy_env.url
    api = ManagementApi.of(proxy_env.server)
    anonymous = httpx.get(f"{url}/api/v1/storage", timeout=30)
    assert anonymous.status_code == 401
    user = api.user()
    assert httpx.get(f"{url}/api/v1/storage", auth=user, timeout=30).status_code == 403
    token = api.token(ADMIN, ["default/pypi"], "read")["token"]
    by_token = httpx.get(f"{url}/api/v1/storage", auth=("__token__", token), timeout=30)
    assert by_token.status_code == 403
    report = httpx.get(f"{url}/api/v1/storage?blobs=false", auth=ADMIN, timeout=60)
    assert report.status_code == 200 and report.headers["cache-control"] == "private, no-store"
    kinds = {e["repository"]: e["type"] for e in report.json()["repositories"]}
    assert kinds["default/pypi"] == "proxy" and kinds["default/local"] == "hosted"
    # Retention settings: proxy repositories only, durations and sizes people write.
    name = unique_name("retained")
    created = httpx.post(
        f"{url}/api/v1/repositories",
        json={
            "name": name,
            "type": "proxy",
            # Never asked: a public address, so the SSRF guard lets it through.
            "upstreams": [{"url": "http://1.1.1.1/simple/"}],
            "cache_max_bytes": "2GB",
            "cache_max_idle": "36h",
        },
        auth=ADMIN,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    shown = httpx.get(f"{url}/api/v1/repositories/default/{name}", auth=ADMIN, timeout=30).json()
    assert shown["cache_max_bytes"] == 2_000_000_000 and shown["cache_max_idle"] == "36h"
    bad = httpx.patch(
        f"{url}/api/v1/repositories/default/{name}",
        json={"cache_max_idle": "soon"},
        auth=ADMIN,
        timeout=30,
    )
    assert bad.status_code == 400 and "duration" in bad.json()["detail"], bad.text
    hosted = httpx.patch(
        f"{url}/api/v1/repositories/default/local",
        json={"cache_max_bytes": 1000},
        auth=ADMIN,
        timeout=30,
    )
    assert hosted.status_code == 400 and "only proxy" in hosted.json()["detail"], hosted.text
    cleared = httpx.patch(
        f"{url}/api/v1/repositories/default/{name}",
        json={"cache_max_bytes": None},
        auth=ADMIN,
        timeout=30,
    )
    assert cleared.status_code == 200
    assert cleared.json()["cache_max_bytes"] is None and cleared.json()["cache_max_idle"] == "36h"
    # A user may not change another's repository's retention.
    denied = httpx.patch(
        f"{url}/api/v1/repositories/default/{name}",
        json={"cache_max_bytes": 1},
        auth=user,
        timeout=30,
    )
    assert denied.status_code == 403, denied.text
    # Pins: the repository's admins only.
    pins = f"{url}/api/v1/repositories/default/{name}/pins"
    wheel = "demo-1.0-py3-none-any.whl"
    body = {"filenames": [wheel, wheel + ".metadata", "demo-1.0.tar.gz"]}
    assert httpx.post(pins, json=body, timeout=30).status_code == 401
    assert httpx.post(pins, json=body, auth=user, timeout=30).status_code == 403
    assert httpx.get(pins, auth=user, timeout=30).status_code == 403
    pinned = httpx.post(pins, json=body, auth=ADMIN, timeout=30)
    assert pinned.status_code == 200 and pinned.json() == {"pinned": 2}, pinned.text
    listed = httpx.get(pins, auth=ADMIN, timeout=30).json()
    assert [p["filename"] for p in listed] == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert httpx.delete(f"{pins}/{wheel}", auth=user, timeout=30).status_code == 403
    assert httpx.delete(f"{pins}/{wheel}", auth=ADMIN, timeout=30).status_code == 204
    assert [p["filename"] for p in httpx.get(pins, auth=ADMIN, timeout=30).json()] == [
        "demo-1.0.tar.gz"
    ]
    local = httpx.post(
        f"{url}/api/v1/repositories/default/local/pins", json=body, auth=ADMIN, timeout=30
    )
    assert local.status_code == 400 and "only proxies have pins" in local.json()["detail"]
    private = httpx.get(f"{url}/api/v1/repositories/default/secret/pins", auth=user, timeout=30)
    assert private.status_code == 404  # a private repository is not even known to exist
    empty = httpx.post(pins, json={"filenames": []}, auth=ADMIN, timeout=30)
    assert empty.status_code in (400, 422)


def _claim(data: Path, blob: Path) -> None:
    """What a collector does first: claim the blob's deletion (it is then under way)."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    _sql(
        data,
        "INSERT INTO blob_orphans (blob_key, first_seen, delete_after, deleting_at) "
        "VALUES (?, ?, ?, ?)",
        (blob.relative_to(data / "blobs").as_posix(), now, now, now),
    )


def _finish_deletion(data: Path, blob: Path) -> None:
    """What the collector does next: delete the bytes, then say so."""
    blob.unlink()
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    _sql(
        data,
        "UPDATE blob_orphans SET deleted_at = ? WHERE blob_key = ?",
        (now, blob.relative_to(data / "blobs").as_posix()),
    )


def test_an_upload_and_a_proxy_fetch_of_bytes_being_deleted_store_them_again(
    local_upstream: LocalUpstream, tmp_path: Path
) -> None:
    """Both writers find their bytes stored already (an old, unreferenced copy) while a
    collector is deleting them: they wait for the deletion, store the bytes again, and only
    then record the file."""
    data = tmp_path / "data"
    project = local_upstream.add_project(unique_project("again"), ("1.0",))
    wheel = project.files[0]
    server = start_server(data, local_upstream.simple_url, WHEELYARD_RETENTION_INTERVAL="0")
    try:
        url = server.url
        (tmp_path / "dist").mkdir()
        built = make_wheel(tmp_path / "dist", unique_project("upl"), "1.0")
        blob = _blob(data / "blobs", built.read_bytes(), age=timedelta(days=3))
        _claim(data, blob)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                upload_file, f"{url}/repositories/default/local/", built, auth=ADMIN
            )
            time.sleep(2.0)
            assert not pending.done()  # the upload waits for the deletion under way
            _finish_deletion(data, blob)
            response = pending.result(timeout=60)
        assert response.status_code == 200, response.text
        assert blob.exists() and blob.read_bytes() == built.read_bytes()  # stored again
        # A proxy client gets the verified bytes as they arrive; the fetch behind it waits for
        # the deletion, stores the bytes again, and only then records the file.
        blob = _blob(data / "blobs", wheel.data, age=timedelta(days=3))
        _claim(data, blob)
        got = httpx.get(_urls(url, project)[wheel.filename], timeout=60)
        assert got.status_code == 200 and got.content == wheel.data
        time.sleep(2.0)
        assert wheel.filename not in _cached(data)  # not while its bytes are being deleted
        _finish_deletion(data, blob)
        assert wheel.filename in _cached_eventually(data, {wheel.filename})
        assert blob.exists() and blob.read_bytes() == wheel.data  # stored again
        local = httpx.get(
            f"{url}/repositories/default/local/simple/{canonicalize_name(built.name.split('-')[0])}/",
            headers={"Accept": JSON_V1},
            timeout=30,
        ).json()
        [listed] = local["files"]
        assert httpx.get(listed["url"], timeout=30).content == built.read_bytes()
        again = httpx.get(_urls(url, project)[wheel.filename], timeout=30)
        assert again.content == wheel.data
        assert local_upstream.file_hits(wheel.filename) == 1
    finally:
        server.stop()
