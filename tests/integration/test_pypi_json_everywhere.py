"""The PyPI JSON API on proxy and group repositories and at the root (issue 9): answered the
way the simple API is (hosted members from the database with the same shadowing, proxies from
the upstream's own JSON API or, without one, from the simple page), every file URL through
Wheelyard. Before, a hosted project through a group gave 502 and a version 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.proxy_env import ProxyEnv
from wheelyard.testing.server_fixtures import unique_project


def get_json(url: str) -> dict:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def all_urls(doc: dict) -> list[str]:
    urls = [f["url"] for f in doc["urls"]]
    for files in doc.get("releases", {}).values():
        urls.extend(f["url"] for f in files)
    return urls


@pytest.fixture
def no_json_api(proxy_env: ProxyEnv) -> Iterator[None]:
    proxy_env.upstream.json_api = False
    yield
    proxy_env.upstream.json_api = True


def test_a_hosted_project_through_a_group_and_the_root(proxy_env: ProxyEnv, tmp_path: Path) -> None:
    name = canonicalize_name(unique_project("hosted-json"))
    proxy_env.upstream.add_project(name, ("99.0",))  # shadowed: never listed
    for version in ("1.0", "1.1"):
        proxy_env.upload(make_wheel(tmp_path, name, version), "internal")
    doc = get_json(f"{proxy_env.repo('corp')}/pypi/{name}/json")
    assert doc["info"]["version"] == "1.1"
    assert sorted(doc["releases"]) == ["1.0", "1.1"]
    assert all(u.startswith(f"{proxy_env.repo('corp')}/{name}/") for u in all_urls(doc))
    release = get_json(f"{proxy_env.repo('corp')}/pypi/{name}/1.0/json")
    assert release["info"]["version"] == "1.0" and "releases" not in release
    (wheel,) = release["urls"]
    assert httpx.get(wheel["url"], timeout=30).status_code == 200
    assert proxy_env.upstream.page_hits(name) == 0
    # The root alias is the default group `all` (local + pypi).
    local = canonicalize_name(unique_project("root-json"))
    proxy_env.upload(make_wheel(tmp_path, local, "2.0"), "local")
    root = get_json(f"{proxy_env.url}/pypi/{local}/json")
    assert all(u.startswith(f"{proxy_env.repo('all')}/{local}/") for u in all_urls(root))
    assert get_json(f"{proxy_env.url}/pypi/{local}/2.0/json")["info"]["version"] == "2.0"
    missing = httpx.get(f"{proxy_env.url}/pypi/{local}/9.9/json", timeout=30)
    assert missing.status_code == 404


def test_a_proxy_answers_from_the_upstreams_json_api(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("proxied-json"), ("1.0", "2.0"))
    name = project.normalized
    doc = get_json(f"{proxy_env.repo('pypi')}/pypi/{name}/json")
    assert doc["info"]["summary"] == f"{project.name} from the upstream's JSON API"
    assert doc["info"]["version"] == "2.0"
    assert sorted(doc["releases"]) == ["1.0", "2.0"]
    urls = all_urls(doc)
    assert urls and all(u.startswith(f"{proxy_env.repo('pypi')}/{name}/") for u in urls)
    assert proxy_env.upstream.hits[f"/pypi/{name}/json"] == 1
    wheel = doc["releases"]["1.0"][0]
    assert wheel["digests"]["sha256"] == project.files[0].sha256
    download = httpx.get(wheel["url"], timeout=30)
    assert download.content == project.files[0].data
    release = get_json(f"{proxy_env.repo('pypi')}/pypi/{name}/1.0/json")
    assert [f["filename"] for f in release["urls"]] == [project.files[0].filename]
    # Through a group, the URLs point through the group.
    grouped = get_json(f"{proxy_env.repo('corp')}/pypi/{name}/json")
    assert all(u.startswith(f"{proxy_env.repo('corp')}/{name}/") for u in all_urls(grouped))
    unknown = httpx.get(f"{proxy_env.repo('pypi')}/pypi/{unique_project('nope')}/json")
    assert unknown.status_code == 404


def test_without_an_upstream_json_api_the_simple_page_answers(
    proxy_env: ProxyEnv, no_json_api: None
) -> None:
    project = proxy_env.upstream.add_project(unique_project("page-json"), ("1.0", "1.5"))
    name = project.normalized
    doc = get_json(f"{proxy_env.repo('pypi')}/pypi/{name}/json")
    assert sorted(doc["releases"]) == ["1.0", "1.5"]
    assert doc["info"]["version"] == "1.5" and doc["info"]["summary"] is None
    entry = doc["releases"]["1.5"][0]
    assert entry["digests"]["sha256"] == project.files[1].sha256
    assert entry["size"] == len(project.files[1].data)
    assert httpx.get(entry["url"], timeout=30).content == project.files[1].data
    assert get_json(f"{proxy_env.repo('pypi')}/pypi/{name}/1.0/json")["info"]["version"] == "1.0"
