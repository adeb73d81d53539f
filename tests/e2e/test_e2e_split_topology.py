"""The production topology as processes: a gateway and two replicas each of index, upload and
proxy-cache, on Postgres, Redis (behind a TCP proxy the tests cut) and S3 (SeaweedFS), with a
local upstream behind the proxy repository. Issue 10, "Done when".

The tests share the cluster and run in file order; the last one kills replicas.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from wheelyard.shared.storage import S3Options
from wheelyard.testing.clients import PLAIN_OUTPUT, make_venv, run, twine_command, uv_binary
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_sdist, make_wheel
from wheelyard.testing.management import ManagementApi
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.split import SplitTopology, scrape, total
from wheelyard.testing.tcp_proxy import TcpProxy
from wheelyard.testing.upstream import LocalUpstream

ADMIN = ("admin", ADMIN_PASSWORD)
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PIP_FLAGS = ["--isolated", "--no-cache-dir", "--disable-pip-version-check", "--no-input"]
#: Requests that are not traffic (probes, scrapes).
NOT_TRAFFIC = {"healthz", "readyz", "metrics"}


@dataclass
class Cluster:
    topology: SplitTopology
    upstream: LocalUpstream
    redis: TcpProxy
    root: Path

    @property
    def url(self) -> str:
        return self.topology.url

    def repo(self, name: str) -> str:
        return f"{self.url}/repositories/default/{name}"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(**PLAIN_OUTPUT, **extra)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3: S3Options, redis_url: str
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("topology")
    redis = urlsplit(redis_url)
    redis_proxy = TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    pg_url, dbname = asyncio.run(create_database())
    upstream = LocalUpstream(root / "upstream").start()
    env = {
        "WHEELYARD_DATABASE_URL": pg_url.rsplit("/", 1)[0] + "/" + dbname,
        "WHEELYARD_BLOB_URL": f"s3://wy-topology-{uuid.uuid4().hex[:8]}",
        "WHEELYARD_S3_ENDPOINT": seaweedfs_s3.endpoint,
        "WHEELYARD_S3_ACCESS_KEY": seaweedfs_s3.access_key,
        "WHEELYARD_S3_SECRET_KEY": seaweedfs_s3.secret_key,
        "WHEELYARD_S3_SECURE": "true" if seaweedfs_s3.secure else "false",
        # Seven processes share this machine's cores with the rest of the suite: a starved
        # event loop can read a Redis answer later than the default 0.5 s, and a cache
        # degraded by that alone would make the replicas' locks per-process (two upstream
        # fetches where these tests assert one). redis-py reads the timeout from the URL.
        "WHEELYARD_CACHE_URL": (
            f"redis://127.0.0.1:{redis_proxy.port}{redis.path or '/0'}?socket_timeout=3"
        ),
        "WHEELYARD_CACHE_PREFIX": f"wy-topology-{uuid.uuid4().hex[:8]}:",
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WHEELYARD_PYPI_PROXY": upstream.simple_url,
        "WHEELYARD_PYPI_PROXY_TIMEOUT": "10",
    }
    topology = SplitTopology(root, env, {"index": 2, "upload": 2, "proxy-cache": 2})
    try:
        with topology:
            yield Cluster(topology, upstream, redis_proxy, root)
    finally:
        upstream.stop()
        redis_proxy.stop()
        asyncio.run(drop_database(pg_url, dbname))


def _traffic(url: str) -> float:
    """Requests a process answered, probes and scrapes left out."""
    samples = scrape(url)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "wheelyard_http_requests_total" and dict(labels)["route"] not in NOT_TRAFFIC
    )


def _listed(cluster: Cluster, repo: str, project: str, auth: tuple[str, str] = ADMIN) -> dict:
    page = httpx.get(f"{cluster.repo(repo)}/simple/{project}/", headers=JSON, auth=auth, timeout=30)
    assert page.status_code == 200, page.text
    return {f["filename"]: f["hashes"]["sha256"] for f in page.json()["files"]}


def test_clients_work_and_every_replica_serves(cluster: Cluster, tmp_path: Path) -> None:
    # twine uploads a wheel and an sdist, uv publishes another version: hosted repository.
    hosted = _name("hosted")
    wheel, sdist = make_wheel(tmp_path, hosted, "1.0"), make_sdist(tmp_path, hosted, "1.0")
    run(
        [
            *twine_command(),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            cluster.repo("local") + "/",
            "-u",
            ADMIN[0],
            "-p",
            ADMIN[1],
            str(wheel),
            str(sdist),
        ],
        env=cluster.env(),
    ).succeeded()
    newer = make_wheel(tmp_path, hosted, "2.0")
    run(
        [
            uv_binary(),
            "publish",
            "--no-cache",
            "--publish-url",
            cluster.repo("local") + "/",
            "--username",
            ADMIN[0],
            "--password",
            ADMIN[1],
            str(newer),
        ],
        env=cluster.env(),
    ).succeeded()
    assert set(_listed(cluster, "local", hosted)) == {wheel.name, sdist.name, newer.name}

    # pip installs from the hosted repository; uv from the proxy and from the group.
    proxied = _name("proxied")
    cluster.upstream.add_project(proxied, ("3.1",))
    pip_python = make_venv(tmp_path / "pip-venv", with_pip=True)
    run(
        [
            pip_python,
            "-m",
            "pip",
            "install",
            *PIP_FLAGS,
            "--index-url",
            cluster.repo("local") + "/simple/",
            f"{hosted}==2.0",
        ],
        env=cluster.env(),
    ).succeeded()
    for repo, project in (("pypi", proxied), ("all", hosted), ("all", proxied)):
        run(
            [
                uv_binary(),
                "pip",
                "install",
                "--no-cache",
                "--python",
                sys.executable,
                "--target",
                str(tmp_path / f"uv-{repo}-{project}"),
                "--index-url",
                cluster.repo(repo) + "/simple/",
                project,
            ],
            env=cluster.env(),
        ).succeeded()

    # A private repository: a reader's token installs, no credentials do not.
    api = ManagementApi(cluster.url, ADMIN)
    private = api.repository("private")
    reader = api.user("reader")
    api.grant(reader[0], private, "read")
    token = api.token(reader, [private], "read")["token"]
    secret_project = _name("secret")
    secret = make_wheel(tmp_path, secret_project, "1.0")
    run(
        [
            *twine_command(),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            f"{cluster.url}/repositories/{private}/",
            "-u",
            ADMIN[0],
            "-p",
            ADMIN[1],
            str(secret),
        ],
        env=cluster.env(),
    ).succeeded()
    simple = f"{cluster.url}/repositories/{private}/simple/"
    with_token = simple.replace("://", f"://__token__:{token}@", 1)
    run(
        [pip_python, "-m", "pip", "install", *PIP_FLAGS, "--index-url", with_token, secret_project],
        env=cluster.env(),
    ).succeeded()
    refused = run(
        [
            uv_binary(),
            "pip",
            "install",
            "--no-cache",
            "--python",
            sys.executable,
            "--target",
            str(tmp_path / "refused"),
            "--index-url",
            simple,
            secret_project,
        ],
        env=cluster.env(),
    ).failed()
    assert token not in refused.output

    # Both replicas of every service took part (their own metrics say so).
    for name, group in cluster.topology.services.items():
        for proc in group:
            assert _traffic(proc.url) > 0, f"{name} replica {proc.url} received no traffic"


def test_metrics_parse_and_count_what_they_claim(cluster: Cluster, tmp_path: Path) -> None:
    project = _name("counted")
    first = make_wheel(tmp_path, project, "1.0")
    put = httpx.put(
        f"{cluster.repo('local')}/{project}/1.0/{first.name}",
        content=first.read_bytes(),
        auth=ADMIN,
        timeout=60,
    )
    assert put.status_code == 201, put.text
    download_url = httpx.get(
        f"{cluster.repo('local')}/simple/{project}/", headers=JSON, timeout=30
    ).json()["files"][0]["url"]
    proxied = _name("counted-upstream")
    cluster.upstream.add_project(proxied)
    processes = list(cluster.topology.processes())
    before = {proc.url: scrape(proc.url) for _kind, proc in processes}

    pages, downloads = 7, 3
    page_url = f"{cluster.repo('local')}/simple/{project}/"
    bodies = [httpx.get(page_url, headers=JSON, timeout=30) for _ in range(pages)]
    assert all(b.status_code == 200 for b in bodies)
    assert all(b.headers["x-request-id"] for b in bodies)
    for _ in range(downloads):
        assert httpx.get(download_url, timeout=30).status_code == 200
    refused = httpx.get(page_url, auth=("admin", "wrong"), timeout=30)
    assert refused.status_code == 401
    second = make_wheel(tmp_path, project, "1.1")
    assert (
        httpx.put(
            f"{cluster.repo('local')}/{project}/1.1/{second.name}",
            content=second.read_bytes(),
            auth=ADMIN,
            timeout=60,
        ).status_code
        == 201
    )
    proxy_page = httpx.get(f"{cluster.repo('pypi')}/simple/{proxied}/", timeout=30)
    repositories = httpx.get(f"{cluster.url}/api/v1/repositories", auth=ADMIN, timeout=30)
    assert proxy_page.status_code == 200, (proxy_page.text, repositories.text)

    after = {proc.url: scrape(proc.url) for _kind, proc in processes}

    def delta(process: str, name: str, /, **labels: str) -> float:
        urls = [p.url for n, p in processes if n == process]
        return sum(total(after[u], name, **labels) - total(before[u], name, **labels) for u in urls)

    # The gateway saw the hosted pages and the proxied one (the same route); the index only
    # the hosted ones, the proxy-cache the proxied one.
    page = {"route": "simple_project", "method": "GET"}
    assert delta("gateway", "wheelyard_http_requests_total", **page, status="200") == pages + 1
    assert delta("gateway", "wheelyard_http_requests_total", **page, status="401") == 1
    # The histogram has no status label: the refused request is timed too.
    assert delta("gateway", "wheelyard_http_request_duration_seconds_count", **page) == pages + 2
    assert delta("index", "wheelyard_http_requests_total", **page, status="200") == pages
    assert delta("proxy-cache", "wheelyard_http_requests_total", **page, status="200") == 1
    assert delta("index", "wheelyard_cache_requests_total", cache="page") == pages
    sent = sum(len(b.content) for b in bodies)
    gateway_sent = delta("gateway", "wheelyard_http_sent_bytes_total", route="simple_project")
    assert gateway_sent == sent + len(proxy_page.content) + len(refused.content)
    assert delta("index", "wheelyard_http_sent_bytes_total", route="simple_project") == sent
    gateway_downloads = delta(
        "gateway", "wheelyard_http_requests_total", route="download", method="GET", status="200"
    )
    assert gateway_downloads == downloads
    forwarded = delta("gateway", "wheelyard_gateway_forwarded_total", service="index", outcome="ok")
    assert forwarded == pages + downloads
    assert delta("gateway", "wheelyard_auth_failures_total", method="password") == 1
    assert delta("upload", "wheelyard_uploads_total", outcome="stored") == 1
    assert delta("gateway", "wheelyard_http_received_bytes_total", route="raw_upload") == len(
        second.read_bytes()
    )
    fetched = delta("proxy-cache", "wheelyard_upstream_fetches_total", kind="page", outcome="ok")
    assert fetched == 1


def test_cold_downloads_across_replicas_hit_the_upstream_once(cluster: Cluster) -> None:
    project = _name("cold")
    upstream_project = cluster.upstream.add_project(project, size_bytes=3 * 1024 * 1024)
    (file,) = upstream_project.files
    page = httpx.get(f"{cluster.repo('pypi')}/simple/{project}/", headers=JSON, timeout=30)
    assert page.status_code == 200, page.text
    url = page.json()["files"][0]["url"]
    replicas = cluster.topology.services["proxy-cache"]
    before = [
        total(scrape(p.url), "wheelyard_http_requests_total", route="download") for p in replicas
    ]

    def download(_: int) -> str:
        with httpx.Client(timeout=120) as client:
            response = client.get(url)
        assert response.status_code == 200, response.text
        return hashlib.sha256(response.content).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        digests = list(pool.map(download, range(50)))

    assert digests == [file.sha256] * 50
    assert cluster.upstream.file_hits(file.filename) == 1
    served = [
        total(scrape(p.url), "wheelyard_http_requests_total", route="download") - b
        for p, b in zip(replicas, before, strict=True)
    ]
    assert sum(served) == 50 and all(served), served


def test_redis_cut_leaves_every_process_ready_and_serving(cluster: Cluster, tmp_path: Path) -> None:
    project = _name("no-redis")
    first = make_wheel(tmp_path, project, "1.0")
    cluster.redis.cut()
    try:
        for name, proc in cluster.topology.processes():
            deadline = time.monotonic() + 30
            while True:
                ready = httpx.get(proc.url + "/readyz", timeout=30)
                assert ready.status_code == 200, (name, ready.text)
                body = ready.json()
                if body["status"] == "degraded":
                    break
                assert time.monotonic() < deadline, (name, body)
                time.sleep(0.2)
            assert body["degraded"] == ["cache"], (name, body)
            assert body["failing"] == [], (name, body)
        # Requests are still served: an upload, then the page and the file it added.
        put = httpx.put(
            f"{cluster.repo('local')}/{project}/1.0/{first.name}",
            content=first.read_bytes(),
            auth=ADMIN,
            timeout=60,
        )
        assert put.status_code == 201, put.text
        listed = _listed(cluster, "local", project)
        assert listed == {first.name: hashlib.sha256(first.read_bytes()).hexdigest()}
        file_url = f"{cluster.repo('local')}/{project}/1.0/{first.name}"
        assert httpx.get(file_url, timeout=30).content == first.read_bytes()
    finally:
        cluster.redis.restore()
    for _kind, proc in cluster.topology.processes():
        deadline = time.monotonic() + 30
        while httpx.get(proc.url + "/readyz", timeout=30).json()["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.3)


def test_killing_a_replica_of_each_service_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    hosted = _name("survivor")
    for version in ("1.0", "1.1"):
        wheel = make_wheel(tmp_path, hosted, version)
        put = httpx.put(
            f"{cluster.repo('local')}/{hosted}/{version}/{wheel.name}",
            content=wheel.read_bytes(),
            auth=ADMIN,
            timeout=60,
        )
        assert put.status_code == 201, put.text
    proxied = _name("survivor-upstream")
    cluster.upstream.add_project(proxied, ("1.0", "1.1", "1.2"))
    (tmp_path / "uploads").mkdir()
    (tmp_path / "again").mkdir()
    killed = threading.Event()
    installs: list[str] = []
    uploads: dict[str, tuple[int, str]] = {}

    def install_loop() -> None:
        for i in range(8):
            for repo, project in (("local", hosted), ("pypi", proxied), ("all", proxied)):
                outcome = run(
                    [
                        uv_binary(),
                        "pip",
                        "install",
                        "--no-cache",
                        "--python",
                        sys.executable,
                        "--target",
                        str(tmp_path / f"t-{i}-{repo}"),
                        "--index-url",
                        cluster.repo(repo) + "/simple/",
                        project,
                    ],
                    env=cluster.env(),
                )
                installs.append(outcome.describe() if outcome.returncode else "")

    def upload_loop() -> None:
        for i in range(24):
            wheel = make_wheel(tmp_path / "uploads", hosted, f"2.{i}")
            try:
                response = httpx.put(
                    f"{cluster.repo('local')}/{hosted}/2.{i}/{wheel.name}",
                    content=wheel.read_bytes(),
                    auth=ADMIN,
                    timeout=60,
                )
                uploads[wheel.name] = (response.status_code, response.text)
            except httpx.HTTPError as exc:
                uploads[wheel.name] = (0, repr(exc))
            if i == 8:
                killed.wait(60)

    threads = [threading.Thread(target=install_loop), threading.Thread(target=upload_loop)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victims: list[ServerProcess] = []
    for group in cluster.topology.services.values():
        victim = group[0]
        assert victim.proc is not None
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        victims.append(victim)
    killed.set()
    for thread in threads:
        thread.join(600)

    failed_installs = [text for text in installs if text]
    assert len(installs) == 24 and not failed_installs, failed_installs[0]
    # Every upload the server confirmed is there, with its bytes; one that was cut off while
    # its replica died was not confirmed, and the client's retry stores it.
    listed = _listed(cluster, "local", hosted)
    for filename, (status, text) in uploads.items():
        wheel = tmp_path / "uploads" / filename
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if status == 201:
            assert listed.get(filename) == digest, (filename, text)
        else:
            version = filename.split("-")[1]
            retry = httpx.put(
                f"{cluster.repo('local')}/{hosted}/{version}/{filename}",
                content=wheel.read_bytes(),
                auth=ADMIN,
                timeout=60,
            )
            assert retry.status_code == 201, (filename, status, text, retry.text)
    ejections = total(scrape(cluster.url), "wheelyard_gateway_replica_ejections_total")
    assert ejections >= 1
    # The gateway took them back once they returned.
    for victim in victims:
        victim.start()
    deadline = time.monotonic() + 60
    again = make_wheel(tmp_path / "again", hosted, "3.0")
    while not all(_traffic(v.url) > 0 for v in victims):
        assert time.monotonic() < deadline, "a restarted replica never got traffic again"
        httpx.get(f"{cluster.repo('local')}/simple/{hosted}/", headers=JSON, timeout=30)
        httpx.put(
            f"{cluster.repo('local')}/{hosted}/3.0/{again.name}",
            content=again.read_bytes(),
            auth=ADMIN,
            timeout=60,
        )
        httpx.get(f"{cluster.repo('pypi')}/simple/{proxied}/", headers=JSON, timeout=30)
        time.sleep(0.2)
