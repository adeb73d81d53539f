"""The real `wheelyard serve` process: first start, production backends, outages, bad config."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from wheelyard.shared.db.engine import create_engine, session_factory
from wheelyard.shared.domain.repositories import list_repositories
from wheelyard.shared.storage.s3 import S3Options
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.tcp_proxy import TcpProxy


def _repos(db_url: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    async def load() -> dict[str, tuple[str, str, tuple[str, ...]]]:
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as s:
                return {
                    r.path: (r.type, r.visibility, r.members) for r in await list_repositories(s)
                }
        finally:
            await engine.dispose()

    return asyncio.run(load())


def test_first_start_embedded_defaults(tmp_path: Path) -> None:
    data = tmp_path / "data"
    started = time.monotonic()
    with ServerProcess(data) as server:
        elapsed = time.monotonic() - started
        assert elapsed < 30, f"healthz took {elapsed:.1f}s"
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["parts"] == dict.fromkeys(
            ["blobs", "cache", "database", "migrations"], "ok"
        )
        secret = data / "admin-password"
        assert secret.stat().st_mode & 0o777 == 0o600
        assert server.admin_password() in server.log()  # printed once, at first start
    repos = _repos(f"sqlite+aiosqlite:///{data}/wheelyard.db")
    assert repos == {
        "default/all": ("group", "public", ("default/local", "default/pypi")),
        "default/local": ("hosted", "public", ()),
        "default/pypi": ("proxy", "public", ()),
    }
    # A second start keeps the password and does not print it again.
    with ServerProcess(data) as again:
        assert httpx.get(again.url + "/readyz").status_code == 200
    assert again.log().count(server.admin_password()) == 1


def test_toml_file_declares_repositories_and_env_wins(tmp_path: Path) -> None:
    config = tmp_path / "wheelyard.toml"
    config.write_text(
        'log_level = "warning"\n'
        'admin_password = "from-the-file"\n'
        "[[repositories]]\n"
        'name = "internal"\ntype = "hosted"\nvisibility = "private"\n'
        "[[repositories]]\n"
        'storage = "team"\nname = "mirror"\ntype = "proxy"\n'
        'upstreams = [{url = "http://127.0.0.1:9/simple/", timeout = 5}]\n'
        "[[repositories]]\n"
        'name = "everything"\ntype = "group"\nmembers = ["internal", "team/mirror"]\n'
    )
    data = tmp_path / "data"
    env = {"WHEELYARD_CONFIG": str(config), "WHEELYARD_ADMIN_PASSWORD": "from-the-env"}
    with ServerProcess(data, env) as server:
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert not (data / "admin-password").exists()
    repos = _repos(f"sqlite+aiosqlite:///{data}/wheelyard.db")
    assert repos["default/internal"] == ("hosted", "private", ())
    assert repos["team/mirror"][0] == "proxy"
    assert repos["default/everything"] == ("group", "public", ("default/internal", "team/mirror"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WHEELYARD_CACHE_URL", "memcached://x"),
        ("WHEELYARD_PYPI_PROXY_TIMEOUT", "soon"),
        ("WHEELYARD_BLOB_URL", "s3://bucket"),  # without an endpoint
        ("WHEELYARD_PUBLIC_URL", "not a url"),
    ],
)
def test_a_bad_value_stops_the_start_naming_the_key(tmp_path: Path, key: str, value: str) -> None:
    env = clean_env(WHEELYARD_DATA_DIR=str(tmp_path), **{key: value})
    result = subprocess.run(
        [sys.executable, "-m", "wheelyard.cli", "serve", "--port", "9"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    expected = "WHEELYARD_S3_ENDPOINT" if key == "WHEELYARD_BLOB_URL" else key
    assert expected in result.stderr, result.stderr


def _wait_readiness(url: str, status: str, part: str | None = None, timeout: float = 30) -> dict:
    """Poll /readyz until its status is `status` (naming `part` when given)."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = httpx.get(url + "/readyz", timeout=10)
        body = r.json()
        assert r.status_code == (503 if status == "unavailable" else 200), body
        named = part is None or part in body["failing"] + body["degraded"]
        if body["status"] == status and named:
            return body
        time.sleep(0.3)
    raise AssertionError(f"readiness never became {status} ({part}): {body}")


def test_production_backends_readiness_names_the_part_that_is_down(
    tmp_path: Path, seaweedfs_s3: S3Options, redis_url: str
) -> None:
    pg_url, dbname = asyncio.run(create_database())
    pg = urlsplit(pg_url)
    s3_host, s3_port = seaweedfs_s3.endpoint.rsplit(":", 1)
    redis = urlsplit(redis_url)
    proxies = {
        "database": TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start(),
        "blobs": TcpProxy(s3_host, int(s3_port)).start(),
        "cache": TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start(),
    }
    credentials = pg.netloc.rpartition("@")[0]
    credentials = credentials + "@" if credentials else ""
    env = {
        "WHEELYARD_DATABASE_URL": (
            f"postgresql+asyncpg://{credentials}127.0.0.1:{proxies['database'].port}/{dbname}"
        ),
        "WHEELYARD_BLOB_URL": "s3://wheelyard-it-" + uuid.uuid4().hex[:8],
        "WHEELYARD_S3_ENDPOINT": f"127.0.0.1:{proxies['blobs'].port}",
        "WHEELYARD_S3_ACCESS_KEY": seaweedfs_s3.access_key,
        "WHEELYARD_S3_SECRET_KEY": seaweedfs_s3.secret_key,
        "WHEELYARD_S3_SECURE": "false",
        "WHEELYARD_CACHE_URL": f"redis://127.0.0.1:{proxies['cache'].port}{redis.path or '/0'}",
    }
    try:
        with ServerProcess(tmp_path / "data", env) as server:
            ready = _wait_readiness(server.url, "ready")
            assert sorted(ready["parts"]) == ["blobs", "cache", "database", "migrations"]
            # Without the database nothing can be served: not ready. Without the blob store or
            # the cache requests are still served: ready, with the part named as degraded.
            expected = {"database": "unavailable", "blobs": "degraded", "cache": "degraded"}
            for part, proxy in proxies.items():
                proxy.cut()
                body = _wait_readiness(server.url, expected[part], part)
                assert body["failing" if part == "database" else "degraded"] == [part], body
                assert part in body["errors"][part]
                assert httpx.get(server.url + "/healthz").status_code == 200  # still running
                proxy.restore()
                _wait_readiness(server.url, "ready")
            assert server.proc is not None and server.proc.poll() is None
            assert "Traceback" not in server.log()
    finally:
        for proxy in proxies.values():
            proxy.stop()
        asyncio.run(drop_database(pg_url, dbname))
