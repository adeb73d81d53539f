"""pip and uv through a repository that holds back new releases (`min_release_age`).

A local upstream lists `P` 1.0 uploaded 60 days ago and `P` 2.0 uploaded an hour ago (PEP 700
upload times). With `min_release_age = "7d"`, unpinned installs get 1.0; `pip install P==2.0`
selects the withheld file (listed as yanked, PEP 592), prints the reason naming the rule and
fails on the 403 download; exempting `P==2.0` makes it installable at once; the explain
endpoint says why each time. The same through a group whose own rule sits on top of a member
without rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from wheelyard.testing.clients import (
    installed_version,
    make_venv,
    pip_install,
    uv_pip_install,
)
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.upstream import LocalUpstream

ADMIN = ("admin", ADMIN_PASSWORD)
NOW = datetime.now(UTC)
AGES = {"1.0": NOW - timedelta(days=60), "2.0": NOW - timedelta(hours=1)}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    up = LocalUpstream(tmp_path_factory.mktemp("upstream"))
    # One project per path under test, so an exemption made in one test leaves the others be.
    for name in ("heldproxy", "heldgroup"):
        up.add_project(name, ("1.0", "2.0"), uploaded=AGES)
    with up:
        yield up


@pytest.fixture(scope="module")
def server(
    upstream: LocalUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("supply-chain")
    config = root / "wheelyard.toml"
    config.write_text(
        f"""
[[repositories]]
name = "held"
type = "proxy"
upstreams = [{{url = "{upstream.simple_url}", timeout = 5}}]
min_release_age = "7d"

[[repositories]]
name = "open"
type = "proxy"
upstreams = [{{url = "{upstream.simple_url}", timeout = 5}}]

[[repositories]]
name = "heldall"
type = "group"
members = ["open"]
min_release_age = "7d"
"""
    )
    process = ServerProcess(
        root / "data",
        {
            "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "WHEELYARD_PYPI_PROXY": upstream.simple_url,
            "WHEELYARD_CONFIG": str(config),
            "WHEELYARD_ALLOW_PRIVATE_UPSTREAMS": "true",
        },
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _explain(server: ServerProcess, repo: str, project: str, version: str) -> list[dict]:
    r = httpx.get(
        f"{server.url}/api/v1/repositories/default/{repo}/policy/explain",
        params={"project": project, "version": version},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    files = r.json()["files"]
    assert files, r.json()
    return files


@pytest.mark.parametrize(("repo", "project"), [("held", "heldproxy"), ("heldall", "heldgroup")])
def test_new_releases_are_held_back_until_exempted(
    server: ServerProcess, repo: str, project: str, tmp_path: Path
) -> None:
    index = f"{server.url}/repositories/default/{repo}/simple/"

    # uv and pip, unpinned: the old release.
    uv_python = make_venv(tmp_path / "uv", with_pip=False)
    outcome = uv_pip_install(uv_python, index, project)
    assert outcome.succeeded(), outcome.describe()
    assert installed_version(uv_python, project) == "1.0"
    python = make_venv(tmp_path / "pip", with_pip=True)
    pip_install(python, index, project).succeeded()
    assert installed_version(python, project) == "1.0"

    # Pinned to the new release: pip selects it (PEP 592), says why it is held back, fails.
    outcome = pip_install(python, index, f"{project}==2.0").failed()
    assert "withheld by min_release_age 7d" in outcome.text, outcome.describe()
    assert "403" in outcome.text, outcome.describe()
    assert installed_version(python, project) == "1.0"

    # The download itself names the rule and when the file becomes available.
    wheel = f"{project}-2.0-py3-none-any.whl"
    r = httpx.get(f"{server.url}/repositories/default/{repo}/{project}/2.0/{wheel}", timeout=30)
    assert r.status_code == 403, r.text
    problem = r.json()
    assert problem["rule"].startswith("min_release_age 7d")
    available = datetime.fromisoformat(problem["available_at"].replace("Z", "+00:00"))
    assert abs(available - (AGES["2.0"] + timedelta(days=7))) < timedelta(seconds=2)
    assert "min_release_age 7d" in problem["detail"]
    # Its PEP 658 metadata is served (not code): pip needs it to finish resolving and print
    # the yank reason before it fails on the distribution.
    r = httpx.get(
        f"{server.url}/repositories/default/{repo}/{project}/2.0/{wheel}.metadata", timeout=30
    )
    assert r.status_code == 200, r.text

    old, new = _explain(server, repo, project, "1.0"), _explain(server, repo, project, "2.0")
    assert [f["served"] for f in old] == [True]
    assert old[0]["rule"].startswith("min_release_age 7d")
    assert [f["served"] for f in new] == [False]
    assert new[0]["listed"] == "as yanked"
    assert new[0]["reason"].startswith("withheld by min_release_age 7d")
    assert new[0]["available_at"] == problem["available_at"]

    # Exempting the new release makes it installable at once.
    r = httpx.patch(
        f"{server.url}/api/v1/repositories/default/{repo}",
        json={"release_age_exempt": [f"{project}==2.0"]},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["release_age_exempt"] == [f"{project}==2.0"]
    assert r.json()["min_release_age"] == "7d"
    pip_install(python, index, f"{project}==2.0").succeeded()
    assert installed_version(python, project) == "2.0"
    exempt = _explain(server, repo, project, "2.0")
    assert exempt[0]["served"] is True
    assert exempt[0]["rule"].startswith(f"release_age_exempt '{project}==2.0'")
