"""Pre-fetch and bundles on the production stores (Postgres, S3, Redis) with two proxy-cache
replicas: a job started through the gateway is answered by whichever replica a poll reaches
(its progress lives in the database), and the CLI's prefetch, export and import work on the
same stores as the services.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from wheelyard.shared.storage import S3Options
from wheelyard.testing.clients import PLAIN_OUTPUT, Outcome, run
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.management import ManagementApi
from wheelyard.testing.server import clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.split import SplitTopology, scrape, total
from wheelyard.testing.upstream import LocalUpstream

ADMIN = ("admin", ADMIN_PASSWORD)
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@dataclass
class Cluster:
    topology: SplitTopology
    upstream: LocalUpstream
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.topology.url

    def cli(self, *args: str | Path) -> Outcome:
        return run(
            [sys.executable, "-m", "wheelyard.cli", *args],
            env=clean_env(**self.env, **PLAIN_OUTPUT),
        )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3: S3Options, redis_url: str
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("split-prefetch")
    pg_url, dbname = asyncio.run(create_database())
    upstream = LocalUpstream(root / "upstream").start()
    upstream.add_project("libone", ("1.0", "2.0"))
    upstream.add_project("libtwo", ("3.0",), sdist=True)
    env = {
        "WHEELYARD_DATABASE_URL": pg_url.rsplit("/", 1)[0] + "/" + dbname,
        "WHEELYARD_BLOB_URL": f"s3://wy-prefetch-{uuid.uuid4().hex[:8]}",
        "WHEELYARD_S3_ENDPOINT": seaweedfs_s3.endpoint,
        "WHEELYARD_S3_ACCESS_KEY": seaweedfs_s3.access_key,
        "WHEELYARD_S3_SECRET_KEY": seaweedfs_s3.secret_key,
        "WHEELYARD_S3_SECURE": "true" if seaweedfs_s3.secure else "false",
        "WHEELYARD_CACHE_URL": redis_url,
        "WHEELYARD_CACHE_PREFIX": f"wy-prefetch-{uuid.uuid4().hex[:8]}:",
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WHEELYARD_PYPI_PROXY": upstream.simple_url,
    }
    topology = SplitTopology(root, env, {"proxy-cache": 2})
    try:
        with topology:
            yield Cluster(topology, upstream, env | {"WHEELYARD_DATA_DIR": str(root / "cli")})
    finally:
        upstream.stop()
        asyncio.run(drop_database(pg_url, dbname))


def test_a_job_is_answered_by_every_replica(cluster: Cluster) -> None:
    api = f"{cluster.url}/api/v1/repositories/default/pypi/prefetch"
    started = httpx.post(api, content="libone==2.0\n", auth=ADMIN, timeout=30)
    assert started.status_code == 202, started.text
    url = f"{api}/{started.json()['id']}"
    deadline, polls, job = time.monotonic() + 60, 0, {}
    while polls < 8 or job.get("status") != "done":
        assert time.monotonic() < deadline, job
        r = httpx.get(url, auth=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        job, polls = r.json(), polls + 1
        time.sleep(0.1)
    assert (job["total"], job["fetched"], job["failed"]) == (1, 1, 0), job
    for replica in cluster.topology.services["proxy-cache"]:
        answered = total(scrape(replica.url), "wheelyard_http_requests_total", route="prefetch_job")
        assert answered > 0, f"{replica.url} answered no poll"


def test_cli_prefetch_export_and_import_on_the_shared_stores(
    cluster: Cluster, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("libone==1.0\nlibtwo==3.0\n")
    done = cluster.cli("mirror", "prefetch", "--repository", "default/pypi", requirements)
    assert "fetched: 2 (" in done.succeeded().output, done.output

    bundle = tmp_path / "bundle"
    cluster.cli(
        "export", "--repository", "default/pypi", "--lock", requirements, "--out", bundle
    ).succeeded()
    target = ManagementApi(cluster.url, ADMIN).repository("public", prefix="offline")
    imported = cluster.cli("import", bundle, "--repository", target).succeeded()
    assert f"imported 2 files into {target}" in imported.output, imported.output
    for project, filename in (("libone", "libone-1.0-py3-none-any.whl"), ("libtwo", None)):
        page = httpx.get(
            f"{cluster.url}/repositories/{target}/simple/{project}/", headers=JSON, timeout=30
        )
        assert page.status_code == 200, page.text
        names = [f["filename"] for f in page.json()["files"]]
        assert len(names) == 1 and (filename is None or names == [filename]), names
