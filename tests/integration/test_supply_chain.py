"""Supply-chain rules end to end on a real server (embedded mode) and a local upstream:
`blocked` and `allowed` with names, wildcards and version specifiers (a blocked file refused
even when already cached), the age rule on hosted repositories and the PyPI JSON API, PEP 792
project status (set on hosted projects, passed through from upstreams), `upload-time` on every
file, settings validation, and refusals counted in metrics and written to the audit log.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD, RunningServer, unique_name
from wheelyard.testing.upstream import LocalUpstream

ADMIN = ("admin", ADMIN_PASSWORD)
JSON_V1 = "application/vnd.pypi.simple.v1+json"
OLD = datetime.now(UTC) - timedelta(days=60)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    with LocalUpstream(tmp_path_factory.mktemp("upstream")) as up:
        yield up


@pytest.fixture(scope="module")
def html_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    """An upstream that serves HTML only: its pages carry no upload times."""
    with LocalUpstream(tmp_path_factory.mktemp("html-upstream"), formats=("html",)) as up:
        yield up


@pytest.fixture(scope="module")
def server(
    upstream: LocalUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    process = ServerProcess(
        tmp_path_factory.mktemp("supply-chain-server"),
        {
            "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "WHEELYARD_PYPI_PROXY": upstream.simple_url,
            "WHEELYARD_ALLOW_PRIVATE_UPSTREAMS": "true",
        },
    ).start()
    try:
        yield RunningServer(process, process.url)
    finally:
        process.stop()


def _api(server: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, f"{server.url}/api/v1{path}", auth=kwargs.pop("auth", ADMIN), timeout=30, **kwargs
    )


def _repository(server: RunningServer, kind: str, **settings: Any) -> str:
    name = unique_name(kind)
    r = _api(server, "POST", "/repositories", json={"name": name, "type": kind, **settings})
    assert r.status_code == 201, r.text
    return name


def _proxy(server: RunningServer, upstream: LocalUpstream, **settings: Any) -> str:
    return _repository(server, "proxy", upstreams=[{"url": upstream.simple_url}], **settings)


def _page(server: RunningServer, repo: str, project: str, *, json: bool = True) -> httpx.Response:
    headers = {"Accept": JSON_V1} if json else {}
    r = httpx.get(
        f"{server.url}/repositories/default/{repo}/simple/{project}/", headers=headers, timeout=30
    )
    assert r.status_code == 200, r.text
    return r


def _files(server: RunningServer, repo: str, project: str) -> dict[str, Any]:
    return {f["filename"]: f for f in _page(server, repo, project).json()["files"]}


def _download(server: RunningServer, repo: str, project: str, version: str, filename: str):  # type: ignore[no-untyped-def]
    return httpx.get(
        f"{server.url}/repositories/default/{repo}/{project}/{version}/{filename}", timeout=30
    )


def _wheel(project: str, version: str) -> str:
    return f"{project.replace('-', '_')}-{version}-py3-none-any.whl"


def _project(upstream: LocalUpstream, prefix: str, versions: tuple[str, ...]) -> str:
    name = canonicalize_name(unique_name(prefix))
    upstream.add_project(name, versions, uploaded=dict.fromkeys(versions, OLD))
    return name


def test_invalid_settings_are_refused_with_422_naming_the_setting(server: RunningServer) -> None:
    for body, word in [
        ({"min_release_age": "soon"}, "min_release_age"),
        ({"min_release_age": -1}, "min_release_age"),
        ({"blocked": ["evil; os_name == 'nt'"]}, "blocked"),
        ({"allowed": ["==1.0"]}, "allowed"),
        ({"release_age_exempt": ["x[extra]"]}, "release_age_exempt"),
        ({"withheld_files": "gone"}, "withheld_files"),
    ]:
        r = _api(
            server,
            "POST",
            "/repositories",
            json={"name": unique_name("bad"), "type": "hosted", **body},
        )
        assert r.status_code == 422, (body, r.text)
        assert word in r.text
    name = _repository(server, "hosted", min_release_age="36h", blocked=["evil-*"])
    r = _api(server, "PATCH", f"/repositories/default/{name}", json={"blocked": ["ok", "bad;"]})
    assert r.status_code == 422, r.text
    shown = _api(server, "GET", f"/repositories/default/{name}").json()
    assert shown["min_release_age"] == "36h"
    assert shown["blocked"] == ["evil-*"]
    assert shown["allowed"] == [] and shown["withheld_files"] == "yanked"
    # null clears a rule; the others stay.
    r = _api(server, "PATCH", f"/repositories/default/{name}", json={"min_release_age": None})
    assert r.status_code == 200, r.text
    assert r.json()["min_release_age"] is None and r.json()["blocked"] == ["evil-*"]


@pytest.mark.parametrize(
    "rule", ['min_release_age = "soon"', "blocked = [\"evil; os_name == 'nt'\"]"]
)
def test_a_declared_rule_that_does_not_parse_stops_the_start(tmp_path: Path, rule: str) -> None:
    config = tmp_path / "wheelyard.toml"
    config.write_text(
        f'[[repositories]]\nname = "bad"\ntype = "proxy"\n{rule}\n'
        'upstreams = [{url = "https://pypi.org/simple/"}]\n'
    )
    env = clean_env(WHEELYARD_DATA_DIR=str(tmp_path / "data"), WHEELYARD_CONFIG=str(config))
    result = subprocess.run(
        [sys.executable, "-m", "wheelyard.cli", "serve", "--port", "9"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Repository 'default/bad'" in result.stderr, result.stderr
    assert rule.split(" ", 1)[0] in result.stderr, result.stderr
    assert not (tmp_path / "data" / "wheelyard.db").exists()  # refused before anything is written


def test_blocked_names_wildcards_and_specifiers(
    server: RunningServer, upstream: LocalUpstream
) -> None:
    evil = _project(upstream, "evil", ("1.0",))
    lib = _project(upstream, "lib", ("1.0", "2.0"))
    nightly = _project(upstream, "torch", ("1.0",)) + "-nightly"
    upstream.add_project(nightly, ("1.0",), uploaded={"1.0": OLD})
    repo = _proxy(server, upstream, blocked=[evil, f"{lib}<2", "*-nightly"])

    assert _files(server, repo, evil) == {}
    assert _page(server, repo, evil).json()["versions"] == []
    assert _files(server, repo, nightly) == {}
    page = _page(server, repo, lib).json()
    assert page["versions"] == ["2.0"]
    assert [f["filename"] for f in page["files"]] == [_wheel(lib, "2.0")]
    html = _page(server, repo, lib, json=False).text
    assert _wheel(lib, "1.0") not in html and _wheel(lib, "2.0") in html

    for project, version in [(evil, "1.0"), (lib, "1.0"), (nightly, "1.0")]:
        wheel = _wheel(project, version)
        r = _download(server, repo, project, version, wheel)
        assert r.status_code == 403, r.text
        assert r.json()["rule"].startswith("blocked")
        assert _download(server, repo, project, version, wheel + ".metadata").status_code == 403
    assert _download(server, repo, lib, "2.0", _wheel(lib, "2.0")).status_code == 200

    # The PyPI JSON API lists only what is served.
    r = httpx.get(f"{server.url}/repositories/default/{repo}/pypi/{lib}/json", timeout=30)
    assert r.status_code == 200, r.text
    assert set(r.json()["releases"]) == {"2.0"}


def test_a_blocked_file_is_refused_even_when_already_cached(
    server: RunningServer, upstream: LocalUpstream
) -> None:
    lib = _project(upstream, "cached", ("1.0",))
    repo = _proxy(server, upstream)
    wheel = _wheel(lib, "1.0")
    assert _download(server, repo, lib, "1.0", wheel).status_code == 200
    hits = upstream.file_hits(wheel)
    r = _api(server, "PATCH", f"/repositories/default/{repo}", json={"blocked": [f"{lib}==1.0"]})
    assert r.status_code == 200, r.text
    r = _download(server, repo, lib, "1.0", wheel)
    assert r.status_code == 403, r.text
    assert f"blocked '{lib}==1.0'" in r.json()["detail"]
    assert _files(server, repo, lib) == {}
    assert upstream.file_hits(wheel) == hits


def test_allowed_curates_by_name_wildcard_and_specifier(
    server: RunningServer, upstream: LocalUpstream
) -> None:
    lib = _project(upstream, "curated", ("1.0", "2.0"))
    corp = _project(upstream, "corp", ("3.0",))
    other = _project(upstream, "other", ("1.0",))
    repo = _proxy(server, upstream, allowed=[f"{lib}>=2", "corp-*"])
    assert list(_files(server, repo, lib)) == [_wheel(lib, "2.0")]
    assert list(_files(server, repo, corp)) == [_wheel(corp, "3.0")]
    assert _files(server, repo, other) == {}
    r = _download(server, repo, lib, "1.0", _wheel(lib, "1.0"))
    assert r.status_code == 403 and r.json()["rule"].startswith("allowed"), r.text
    r = _download(server, repo, other, "1.0", _wheel(other, "1.0"))
    assert r.status_code == 403, r.text
    assert _download(server, repo, corp, "3.0", _wheel(corp, "3.0")).status_code == 200
    explained = _api(
        server, "GET", f"/repositories/default/{repo}/policy/explain", params={"project": lib}
    ).json()
    by_version = {f["version"]: f for f in explained["files"]}
    assert by_version["1.0"]["served"] is False and by_version["1.0"]["listed"] == "no"
    assert by_version["2.0"]["served"] is True


def test_the_age_rule_on_a_hosted_repository(server: RunningServer, tmp_path: Path) -> None:
    repo = _repository(server, "hosted", min_release_age="7d", withheld_files="hidden")
    project = canonicalize_name(unique_name("fresh"))
    wheel = make_wheel(tmp_path, project, "1.0")
    assert (
        server.upload(wheel, repo=f"{server.url}/repositories/default/{repo}/").status_code == 200
    )
    # Hidden: not on the page, no version, no JSON release, refused with the time it is due.
    page = _page(server, repo, project).json()
    assert page["files"] == [] and page["versions"] == []
    r = httpx.get(f"{server.url}/repositories/default/{repo}/pypi/{project}/json", timeout=30)
    assert r.status_code == 404 and "no releases" in r.text, r.text  # none is offered
    r = _download(server, repo, project, "1.0", wheel.name)
    assert r.status_code == 403 and "available_at" in r.json(), r.text
    assert _download(server, repo, project, "1.0", wheel.name + ".metadata").status_code == 403
    # Listed as yanked instead: the file shows with its reason; its metadata is served.
    r = _api(server, "PATCH", f"/repositories/default/{repo}", json={"withheld_files": "yanked"})
    assert r.status_code == 200, r.text
    page = _page(server, repo, project).json()
    (listed,) = page["files"]
    assert page["versions"] == []  # every file of 1.0 is withheld, listed or not
    assert listed["yanked"].startswith("withheld by min_release_age 7d")
    assert listed["upload-time"]
    assert _download(server, repo, project, "1.0", wheel.name + ".metadata").status_code == 200
    assert _download(server, repo, project, "1.0", wheel.name).status_code == 403


def _set_status(
    server: RunningServer, repo: str, project: str, status: str, reason: str | None = None
) -> httpx.Response:
    return _api(
        server,
        "PUT",
        f"/repositories/default/{repo}/projects/{project}/status",
        json={"status": status, "reason": reason},
    )


def test_project_status_of_hosted_projects(server: RunningServer, tmp_path: Path) -> None:
    repo = _repository(server, "hosted")
    group = _repository(server, "group", members=[repo])
    project = canonicalize_name(unique_name("status"))
    upload_url = f"{server.url}/repositories/default/{repo}/"
    wheel = make_wheel(tmp_path, project, "1.0")
    assert server.upload(wheel, repo=upload_url).status_code == 200

    for status in ("deprecated", "archived"):
        r = _set_status(server, repo, project, status, "use other-thing")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "repository": f"default/{repo}",
            "project": project,
            "status": status,
            "reason": "use other-thing",
        }
        for where in (repo, group):
            page = _page(server, where, project).json()
            assert page["project-status"] == {"status": status, "reason": "use other-thing"}
            assert len(page["files"]) == 1
            html = _page(server, where, project, json=False).text
            assert f'<meta name="pypi:project-status" content="{status}">' in html
            assert '<meta name="pypi:project-status-reason" content="use other-thing">' in html
            assert _download(server, where, project, "1.0", wheel.name).status_code == 200
    later = make_wheel(tmp_path, project, "2.0")
    r = server.upload(later, repo=upload_url)  # archived: no new uploads
    assert r.status_code == 403 and "archived" in r.text, r.text

    r = _set_status(server, repo, project, "quarantined", "malware reported")
    assert r.status_code == 200, r.text
    for where in (repo, group):
        page = _page(server, where, project).json()
        assert page["project-status"]["status"] == "quarantined"
        assert page["files"] == []
        r = _download(server, where, project, "1.0", wheel.name)
        assert r.status_code == 403 and "quarantined" in r.json()["rule"], r.text
        r = httpx.get(f"{server.url}/repositories/default/{where}/pypi/{project}/json", timeout=30)
        assert r.status_code == 404 and "no releases" in r.text, r.text
    assert server.upload(later, repo=upload_url).status_code == 403

    assert _set_status(server, repo, project, "active").status_code == 200
    assert "project-status" not in _page(server, repo, project).json()
    assert server.upload(later, repo=upload_url).status_code == 200

    # Refused: a status PEP 792 does not know, a proxy repository, a missing project, a caller
    # who does not administer the repository.
    assert _set_status(server, repo, project, "deleted").status_code == 422
    assert _set_status(server, repo, "no-such-project", "archived").status_code == 404
    assert _set_status(server, "pypi", project, "archived").status_code == 400
    r = httpx.put(
        f"{server.url}/api/v1/repositories/default/{repo}/projects/{project}/status",
        json={"status": "quarantined"},
        timeout=30,
    )
    assert r.status_code == 401, r.text
    events = _api(server, "GET", "/audit", params={"action": "project.status"}).json()
    assert any(e["target"] == f"default/{repo}/{project}" for e in events)


def test_upstream_statuses_pass_through(server: RunningServer, upstream: LocalUpstream) -> None:
    deprecated = _project(upstream, "dep", ("1.0",))
    upstream.project(deprecated).status = "deprecated"
    upstream.project(deprecated).status_reason = "moved"
    quarantined = _project(upstream, "quar", ("1.0",))
    upstream.project(quarantined).status = "quarantined"
    repo = _proxy(server, upstream)
    group = _repository(server, "group", members=[repo])
    for where in (repo, group):
        page = _page(server, where, deprecated).json()
        assert page["project-status"] == {"status": "deprecated", "reason": "moved"}
        assert len(page["files"]) == 1
        html = _page(server, where, deprecated, json=False).text
        assert '<meta name="pypi:project-status" content="deprecated">' in html
        wheel = _wheel(deprecated, "1.0")
        assert _download(server, where, deprecated, "1.0", wheel).status_code == 200

        page = _page(server, where, quarantined).json()
        assert page["project-status"] == {"status": "quarantined"}
        assert page["files"] == []
        wheel = _wheel(quarantined, "1.0")
        r = _download(server, where, quarantined, "1.0", wheel)
        assert r.status_code == 403 and "quarantined" in r.json()["rule"], r.text
    assert upstream.file_hits(_wheel(quarantined, "1.0")) == 0


def test_every_file_has_an_upload_time_and_the_first_seen_time_is_kept_apart(
    server: RunningServer, html_upstream: LocalUpstream
) -> None:
    project = _project(html_upstream, "htmlonly", ("1.0", "2.0"))
    repo = _proxy(server, html_upstream, min_release_age="1h")
    before = datetime.now(UTC)
    files = _page(server, repo, project).json()["files"]
    assert len(files) == 2
    for f in files:
        seen = datetime.fromisoformat(f["upload-time"].replace("Z", "+00:00"))
        assert before - timedelta(seconds=5) < seen < datetime.now(UTC) + timedelta(seconds=5)
        # Just seen, so held back by the hour-long age rule.
        assert f["yanked"].startswith("withheld by min_release_age 1h")
    # The PyPI JSON API offers nothing withheld (built from the simple page here).
    r = httpx.get(f"{server.url}/repositories/default/{repo}/pypi/{project}/json", timeout=30)
    assert r.status_code == 404 and "no releases" in r.text, r.text
    explained = _api(
        server,
        "GET",
        f"/repositories/default/{repo}/policy/explain",
        params={"project": project, "version": "1.0"},
    ).json()
    (one,) = explained["files"]
    assert one["upload_time"] is None and one["first_seen"] is not None
    assert one["served"] is False and one["available_at"]
    # A page fetched again keeps the time the file was first seen.
    r = _api(server, "PATCH", f"/repositories/default/{repo}", json={"ttl": 0})
    assert r.status_code == 200, r.text
    again = _page(server, repo, project).json()["files"]
    assert [f["upload-time"] for f in again] == [f["upload-time"] for f in files]


def test_refusals_are_counted_and_audited(server: RunningServer, upstream: LocalUpstream) -> None:
    evil = _project(upstream, "audited", ("1.0",))
    repo = _proxy(server, upstream, blocked=[evil])
    wheel = _wheel(evil, "1.0")
    for _ in range(3):
        assert _download(server, repo, evil, "1.0", wheel).status_code == 403
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("wheelyard_policy_refusals_total{") and 'rule="blocked"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 3, metrics
    events = _api(server, "GET", "/audit", params={"action": "policy.refused"}).json()
    mine = [e for e in events if e["target"] == f"default/{repo}"]
    assert len(mine) == 3
    assert mine[0]["detail"]["filename"] == wheel
    assert mine[0]["detail"]["rule"] == f"blocked '{evil}' of default/{repo}"


def test_a_group_applies_its_rules_on_top_of_its_members(
    server: RunningServer, upstream: LocalUpstream
) -> None:
    first = _project(upstream, "first", ("1.0",))
    second = _project(upstream, "second", ("1.0",))
    member = _proxy(server, upstream, blocked=[first])
    group = _repository(server, "group", members=[member], blocked=[second])
    assert _files(server, member, first) == {}
    assert list(_files(server, member, second)) == [_wheel(second, "1.0")]
    assert _files(server, group, first) == {}
    assert _files(server, group, second) == {}
    for project, owner in [(first, member), (second, group)]:
        r = _download(server, group, project, "1.0", _wheel(project, "1.0"))
        assert r.status_code == 403, r.text
        assert r.json()["rule"] == f"blocked '{project}' of default/{owner}"
        explained = _api(
            server,
            "GET",
            f"/repositories/default/{group}/policy/explain",
            params={"project": project},
        ).json()
        assert explained["sources"] == [f"default/{member}"]
        assert explained["files"][0]["rule"] == f"blocked '{project}' of default/{owner}"
    assert _download(server, member, second, "1.0", _wheel(second, "1.0")).status_code == 200
