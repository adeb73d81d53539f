"""The supply-chain rules in split mode: a gateway and one process per service on Postgres and
Redis. Rules set through the gateway's management API reach the proxy-cache and index
processes (within the directory's two seconds); the project status set through the upload
service is served by the index and proxy-cache processes; refusals and explain behave as in
embedded mode."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.split import SplitTopology
from wheelyard.testing.uploads import upload_file
from wheelyard.testing.upstream import LocalUpstream

ADMIN = ("admin", ADMIN_PASSWORD)
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
NOW = datetime.now(UTC)


@dataclass
class Split:
    url: str
    upstream: LocalUpstream


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Split]:
    root = tmp_path_factory.mktemp("supply-split")
    pg_url, dbname = asyncio.run(create_database())
    upstream = LocalUpstream(root / "upstream").start()
    upstream.add_project(
        "splitheld",
        ("1.0", "2.0"),
        uploaded={"1.0": NOW - timedelta(days=60), "2.0": NOW - timedelta(hours=1)},
    )
    env = {
        "WHEELYARD_DATABASE_URL": pg_url.rsplit("/", 1)[0] + "/" + dbname,
        "WHEELYARD_BLOB_URL": f"file://{root}/blobs",
        "WHEELYARD_CACHE_URL": redis_url,
        "WHEELYARD_CACHE_PREFIX": f"wy-supply-{uuid.uuid4().hex[:8]}:",
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WHEELYARD_PYPI_PROXY": upstream.simple_url,
        "WHEELYARD_ALLOW_PRIVATE_UPSTREAMS": "true",
    }
    try:
        with SplitTopology(root, env) as topology:
            yield Split(topology.url, upstream)
    finally:
        upstream.stop()
        asyncio.run(drop_database(pg_url, dbname))


def _eventually(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """`check()`'s value once it is truthy (rule changes reach other processes within the
    repository directory's TTL)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _files(split: Split, repo: str, project: str) -> dict[str, Any]:
    r = httpx.get(
        f"{split.url}/repositories/default/{repo}/simple/{project}/", headers=JSON, timeout=30
    )
    assert r.status_code == 200, r.text
    return {f["filename"]: f for f in r.json()["files"]}


def test_rules_and_statuses_across_processes(split: Split, tmp_path: Path) -> None:
    old, new = "splitheld-1.0-py3-none-any.whl", "splitheld-2.0-py3-none-any.whl"
    assert not _files(split, "pypi", "splitheld")[new]["yanked"]
    r = httpx.patch(
        f"{split.url}/api/v1/repositories/default/pypi",
        json={"min_release_age": "7d"},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    for repo in ("pypi", "all"):
        withheld = _eventually(lambda repo=repo: _files(split, repo, "splitheld")[new]["yanked"])
        assert withheld.startswith("withheld by min_release_age 7d of default/pypi"), withheld
        assert not _files(split, repo, "splitheld")[old]["yanked"]
        base = f"{split.url}/repositories/default/{repo}/splitheld"
        r = httpx.get(f"{base}/2.0/{new}", timeout=30)
        assert r.status_code == 403 and r.json()["rule"] == "min_release_age 7d of default/pypi"
        assert httpx.get(f"{base}/1.0/{old}", timeout=30).status_code == 200
    r = httpx.get(
        f"{split.url}/api/v1/repositories/default/all/policy/explain",
        params={"project": "splitheld", "version": "2.0"},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["sources"] == ["default/pypi"]
    assert r.json()["files"][0]["served"] is False

    # A hosted project quarantined through the upload service: no files from the index and
    # proxy-cache processes, downloads refused.
    wheel = make_wheel(tmp_path, "splitown", "1.0")
    upload = upload_file(f"{split.url}/repositories/default/local/", wheel, auth=ADMIN)
    assert upload.status_code == 200, upload.text
    r = httpx.put(
        f"{split.url}/api/v1/repositories/default/local/projects/splitown/status",
        json={"status": "quarantined", "reason": "reported"},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    for repo in ("local", "all"):
        page = httpx.get(
            f"{split.url}/repositories/default/{repo}/simple/splitown/", headers=JSON, timeout=30
        ).json()
        assert page["project-status"] == {"status": "quarantined", "reason": "reported"}
        assert page["files"] == []
        r = httpx.get(
            f"{split.url}/repositories/default/{repo}/splitown/1.0/{wheel.name}", timeout=30
        )
        assert r.status_code == 403 and "quarantined" in r.json()["rule"], r.text
