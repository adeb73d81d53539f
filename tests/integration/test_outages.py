"""Store outages under a running server: each store fails in the way chosen for it (503 Service
Unavailable, RFC 9110 §15.6.4, when the database or the blob store is down; only a slower
service when the cache is, docs/architecture.md "Stores").

Postgres, S3 and Redis each sit behind a TCP proxy the test can cut. Expected:
- database down: reads and uploads answer 503 with Retry-After (no 500, no hang), /healthz
  stays 200, and everything works again once it is back, without a restart;
- blob store down: uploads answer 503 and leave no row behind; downloads 503;
- cache (Redis) down: uploads, pages and downloads keep working (degraded, not failed).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from wheelyard.shared.storage.s3 import S3Options
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD, RunningServer
from wheelyard.testing.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def cut_server(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3: S3Options, redis_url: str
) -> Iterator[tuple[RunningServer, dict[str, TcpProxy]]]:
    pg_url, dbname = asyncio.run(create_database())
    pg, redis = urlsplit(pg_url), urlsplit(redis_url)
    s3_host, s3_port = seaweedfs_s3.endpoint.rsplit(":", 1)
    proxies = {
        "database": TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start(),
        "blobs": TcpProxy(s3_host, int(s3_port)).start(),
        "cache": TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start(),
    }
    credentials = pg.netloc.rpartition("@")[0]
    credentials = credentials + "@" if credentials else ""
    env = {
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WHEELYARD_DATABASE_URL": (
            f"postgresql+asyncpg://{credentials}127.0.0.1:{proxies['database'].port}/{dbname}"
        ),
        "WHEELYARD_BLOB_URL": "s3://wheelyard-outage-" + uuid.uuid4().hex[:8],
        "WHEELYARD_S3_ENDPOINT": f"127.0.0.1:{proxies['blobs'].port}",
        "WHEELYARD_S3_ACCESS_KEY": seaweedfs_s3.access_key,
        "WHEELYARD_S3_SECRET_KEY": seaweedfs_s3.secret_key,
        "WHEELYARD_S3_SECURE": "false",
        "WHEELYARD_CACHE_URL": f"redis://127.0.0.1:{proxies['cache'].port}{redis.path or '/0'}",
    }
    data = tmp_path_factory.mktemp("outages")
    try:
        with ServerProcess(data, env) as proc:
            yield RunningServer(proc, proc.url), proxies
    finally:
        for proxy in proxies.values():
            proxy.stop()
        asyncio.run(drop_database(pg_url, dbname))


def _until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_database_down_gives_503_and_recovers_without_restart(
    cut_server: tuple[RunningServer, dict[str, TcpProxy]], tmp_path: Path
) -> None:
    server, proxies = cut_server
    name = "outage-db-" + uuid.uuid4().hex[:8]
    assert server.upload(make_wheel(tmp_path, name, "1.0")).status_code == 200
    page = f"{server.local_simple}{name}/"
    assert httpx.get(page).status_code == 200
    proxies["database"].cut()
    try:
        started = time.monotonic()
        upload = server.upload(make_wheel(tmp_path, name, "2.0"))
        assert upload.status_code == 503, upload.text
        assert upload.headers["retry-after"]
        assert time.monotonic() - started < 20
        other = httpx.get(f"{server.local_simple}never-seen-{uuid.uuid4().hex[:6]}/", timeout=30)
        assert other.status_code == 503, other.text
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/readyz", timeout=30).status_code == 503
    finally:
        proxies["database"].restore()
    assert _until(lambda: server.upload(make_wheel(tmp_path, name, "2.0")).status_code == 200)
    body = httpx.get(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    assert body["versions"] == ["1.0", "2.0"]
    assert "Traceback" not in server.process.log()


def test_blob_store_down_refuses_uploads_and_stores_no_row(
    cut_server: tuple[RunningServer, dict[str, TcpProxy]], tmp_path: Path
) -> None:
    server, proxies = cut_server
    name = "outage-s3-" + uuid.uuid4().hex[:8]
    wheel = make_wheel(tmp_path, name, "1.0")
    proxies["blobs"].cut()
    try:
        response = server.upload(wheel)
        assert response.status_code == 503, response.text
        assert httpx.get(f"{server.local_simple}{name}/").status_code == 404  # no row
    finally:
        proxies["blobs"].restore()
    assert _until(lambda: server.upload(wheel).status_code == 200)
    (tmp_path / "again").mkdir()
    stored = make_wheel(tmp_path / "again", name, "1.1")
    assert server.upload(stored).status_code == 200
    url = f"{server.local}/{name}/1.1/{stored.name}"
    proxies["blobs"].cut()
    try:
        assert httpx.get(url, timeout=30).status_code == 503
    finally:
        proxies["blobs"].restore()
    assert _until(lambda: httpx.get(url).content == stored.read_bytes())


def test_cache_down_degrades_but_serves(
    cut_server: tuple[RunningServer, dict[str, TcpProxy]], tmp_path: Path
) -> None:
    server, proxies = cut_server
    name = "outage-redis-" + uuid.uuid4().hex[:8]
    proxies["cache"].cut()
    try:
        wheel = make_wheel(tmp_path, name, "1.0")
        assert server.upload(wheel).status_code == 200
        page = httpx.get(f"{server.local_simple}{name}/")
        assert page.status_code == 200 and wheel.name in page.text
        file = httpx.get(f"{server.local}/{name}/1.0/{wheel.name}")
        assert file.content == wheel.read_bytes()
        authed = httpx.get(f"{server.local_simple}{name}/", auth=server.admin)
        assert authed.status_code == 200
    finally:
        proxies["cache"].restore()
