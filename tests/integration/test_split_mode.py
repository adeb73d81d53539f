"""Split mode: the gateway and each service in its own process, on Postgres, Redis and shared
blob storage, as in production; the gateway forwards with its streaming client."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from wheelyard.shared.auth.internal_jwt import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_key_files
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.tcp_proxy import free_port
from wheelyard.testing.web import WebClient


@pytest.fixture(scope="module")
def split(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[dict[str, ServerProcess]]:
    root = tmp_path_factory.mktemp("split")
    keys = root / "keys"
    generate_key_files(keys)
    pg_url, dbname = asyncio.run(create_database())
    common = {
        "WHEELYARD_DATABASE_URL": pg_url.rsplit("/", 1)[0] + "/" + dbname,
        "WHEELYARD_BLOB_URL": f"file://{root}/blobs",
        "WHEELYARD_CACHE_URL": redis_url,
        # Other runs may share this Redis: their cached records must not be ours.
        "WHEELYARD_CACHE_PREFIX": f"wheelyard-split-{uuid.uuid4().hex[:8]}:",
        "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY": str(keys / PUBLIC_KEY_FILE),
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    procs: dict[str, ServerProcess] = {}
    try:
        # Each process gets its own data dir: nothing is shared but the stores.
        for name in ("index", "upload", "proxy-cache"):
            procs[name] = ServerProcess(
                root / name, common, command=("service", name), log_name="service.log"
            )
        gateway_env = common | {
            "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY": str(keys / PRIVATE_KEY_FILE),
            "WHEELYARD_INDEX_URL": procs["index"].url,
            "WHEELYARD_UPLOAD_URL": procs["upload"].url,
            "WHEELYARD_PROXY_CACHE_URL": procs["proxy-cache"].url,
        }
        # The gateway migrates and bootstraps, so it starts first.
        procs["gateway"] = ServerProcess(
            root / "gateway", gateway_env, command=("service", "gateway"), log_name="service.log"
        ).start()
        for name in ("index", "upload", "proxy-cache"):
            procs[name].start()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()
        asyncio.run(drop_database(pg_url, dbname))


def test_upload_and_read_through_the_gateway(
    split: dict[str, ServerProcess], tmp_path: Path
) -> None:
    gateway = split["gateway"].url
    wheel = make_wheel(tmp_path, "split-demo", "1.0")
    data = wheel.read_bytes()
    put = httpx.put(
        f"{gateway}/repositories/default/local/split-demo/1.0/{wheel.name}",
        content=data,
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    assert put.status_code == 201, put.text
    page = httpx.get(
        f"{gateway}/repositories/default/local/simple/split-demo/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    assert page.status_code == 200, page.text
    (entry,) = page.json()["files"]
    assert entry["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["url"].startswith(gateway)
    assert httpx.get(entry["url"]).content == data
    assert httpx.get(f"{gateway}/readyz").status_code == 200


def test_services_refuse_requests_that_bypass_the_gateway(split: dict[str, ServerProcess]) -> None:
    requests = {
        "index": ("GET", "/repositories/default/local/simple/split-demo/"),
        "upload": ("PUT", "/repositories/default/local/split-demo/1.1/split_demo-1.1.tar.gz"),
        "proxy-cache": ("GET", "/repositories/default/all/simple/split-demo/"),
    }
    for name, (method, path) in requests.items():
        url = split[name].url + path
        for headers in ({}, {"X-Forwarded-User": "admin"}, {"X-Wheelyard-Internal": "forged"}):
            response = httpx.request(method, url, headers=headers, content=b"x")
            assert response.status_code == 401, (name, headers, response.text)
        assert httpx.get(split[name].url + "/healthz").status_code == 200


def test_large_files_stream_through_the_gateway_in_bounded_memory(
    split: dict[str, ServerProcess], tmp_path: Path
) -> None:
    """200 MB up and down through the gateway: the bytes arrive whole, and the gateway's
    memory stays flat (back-pressure both ways; no body is ever held whole)."""
    gateway = split["gateway"]
    assert gateway.proc is not None
    process = psutil.Process(gateway.proc.pid)
    wheel = make_wheel(tmp_path, "split-big", "1.0")
    block = hashlib.sha256(b"block").digest() * (1024 * 1024 // 32)
    with (
        zipfile.ZipFile(wheel, "a", compression=zipfile.ZIP_STORED) as zf,
        zf.open("split_big/data.bin", "w", force_zip64=True) as fh,
    ):
        for _ in range(200):
            fh.write(block)
    digest = hashlib.sha256()
    with wheel.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    url = f"{gateway.url}/repositories/default/local/split-big/1.0/{wheel.name}"
    baseline = process.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with wheel.open("rb") as body:
            put = httpx.put(url, content=body, auth=("admin", ADMIN_PASSWORD), timeout=300)
        assert put.status_code == 201, put.text
        assert put.json()["sha256"] == digest.hexdigest()
        received = hashlib.sha256()
        size = 0
        with httpx.stream("GET", url, timeout=300) as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == wheel.stat().st_size
            for chunk in response.iter_raw():
                received.update(chunk)
                size += len(chunk)
    finally:
        stop.set()
        sampler.join()
    assert size == wheel.stat().st_size > 200 * 1024 * 1024
    assert received.hexdigest() == digest.hexdigest()
    assert peak - baseline < 64 * 1024 * 1024, (baseline, peak)


def test_gateway_refuses_a_public_key_without_its_private_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key_files(keys)
    unreadable = tmp_path / "missing.pem"
    cases = {
        "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY": {
            "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY": str(keys / PUBLIC_KEY_FILE)
        },
        "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY ": {
            "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY": str(unreadable),
        },
    }
    for setting, env in cases.items():
        result = subprocess.run(
            [sys.executable, "-m", "wheelyard.cli", "service", "gateway", "--port", "9"],
            env=clean_env(WHEELYARD_DATA_DIR=str(tmp_path / "data"), **env),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert setting.strip() in result.stderr, result.stderr
    # A service with a key it cannot read names the setting too.
    result = subprocess.run(
        [sys.executable, "-m", "wheelyard.cli", "service", "index", "--port", "9"],
        env=clean_env(
            WHEELYARD_DATA_DIR=str(tmp_path / "data"),
            WHEELYARD_INTERNAL_JWT_PUBLIC_KEY=str(unreadable),
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY" in result.stderr


def test_gateway_readiness_does_not_depend_on_the_services(tmp_path: Path) -> None:
    """No cascade: with every service down, the gateway is still ready (it can answer, with
    503 for what needs a service), so its pods stay in their Service."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        "WHEELYARD_INDEX_URL": dead,
        "WHEELYARD_UPLOAD_URL": dead,
        "WHEELYARD_PROXY_CACHE_URL": dead,
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    with ServerProcess(tmp_path / "gw", env, command=("service", "gateway")) as gateway:
        ready = httpx.get(gateway.url + "/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        page = httpx.get(gateway.url + "/repositories/default/local/simple/x/", timeout=30)
        assert page.status_code == 503
        assert page.headers["retry-after"]
        assert page.headers["x-request-id"]


def test_the_web_interface_and_the_merged_api_document_work_split(
    split: dict[str, ServerProcess],
) -> None:
    """The gateway asks each service for its routes' documentation over HTTP, and its web
    interface reads the shared database, with sessions in the shared cache."""
    gateway = split["gateway"].url
    paths = httpx.get(f"{gateway}/openapi.json", timeout=30).json()["paths"]
    for path in ("/api/v1/search", "/api/v1/users", "/repositories/{storage}/{repo}/"):
        assert path in paths, path
    page = httpx.get(f"{gateway}/ui/repositories/default/local/", timeout=30)
    assert page.status_code == 200 and "split-demo" in page.text
    with WebClient(gateway) as client:
        client.sign_in("admin", ADMIN_PASSWORD)
        assert client.get("/ui/admin/").status_code == 200
