"""Group repositories: one index over ordered hosted and proxy members, with hosted names
shadowing public ones, so a public project can never stand in for an internal one of the same
name (dependency confusion, see PEP 708's Motivation; uv's default `first-index` strategy
guards against it the same way).

Groups of the session server (`proxy_env`): `corp` = internal, internal2, pypi; `optin` =
internal, pypi; `mixed` = local, secret (a private proxy); the root alias `/simple/` serves the
default group `all` = local, pypi.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.proxy_env import ADMIN, ProxyEnv
from wheelyard.testing.server_fixtures import unique_project

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def versions_and_urls(response: httpx.Response) -> tuple[list[str], list[str]]:
    assert response.status_code == 200, response.text
    data = response.json()
    return data["versions"], [f["url"] for f in data["files"]]


def test_a_hosted_project_shadows_the_public_one_and_the_upstream_is_never_asked(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    name = canonicalize_name(unique_project("acme-internal"))
    proxy_env.upstream.add_project(name, ("99.0",))  # the attacker's public upload
    internal = make_wheel(tmp_path, name, "1.0")
    proxy_env.upload(internal, "internal")
    versions, urls = versions_and_urls(proxy_env.page("corp", name))
    assert versions == ["1.0"]
    assert urls == [f"{proxy_env.repo('corp')}/{name}/1.0/{internal.name}"]
    assert httpx.get(urls[0], timeout=30).content == internal.read_bytes()
    # The public file's URL through the group does not reach the upstream either.
    public = proxy_env.upstream.project(name).files[0].filename
    assert (
        httpx.get(f"{proxy_env.repo('corp')}/{name}/99.0/{public}", timeout=30).status_code == 404
    )
    assert proxy_env.upstream.page_hits(name) == 0
    assert proxy_env.upstream.file_hits(public) == 0


def test_root_alias_shadows_too(proxy_env: ProxyEnv, tmp_path: Path) -> None:
    name = canonicalize_name(unique_project("alias-internal"))
    proxy_env.upstream.add_project(name, ("99.0",))
    wheel = make_wheel(tmp_path, name, "1.0")
    proxy_env.upload(wheel, "local")
    for path in (f"/simple/{name}/", f"/repositories/default/all/simple/{name}/"):
        versions, urls = versions_and_urls(
            httpx.get(proxy_env.url + path, headers={"Accept": JSON_V1}, timeout=30)
        )
        assert versions == ["1.0"]
        assert httpx.get(urls[0], timeout=30).content == wheel.read_bytes()
    assert proxy_env.upstream.page_hits(name) == 0


def test_other_names_fall_through_to_the_proxy(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("public"), ("1.0", "2.0"))
    name = project.normalized
    versions, urls = versions_and_urls(proxy_env.page("corp", name))
    assert versions == ["1.0", "2.0"]
    assert all(u.startswith(f"{proxy_env.repo('corp')}/{name}/") for u in urls)
    for url, f in zip(urls, project.files, strict=True):
        assert httpx.get(url, timeout=30).content == f.data
        assert httpx.get(url + ".metadata", timeout=30).content == f.metadata
    # And through the root alias, served from the same cached blobs.
    alias = httpx.get(f"{proxy_env.url}/simple/{name}/", headers={"Accept": JSON_V1}, timeout=30)
    alias_versions, alias_urls = versions_and_urls(alias)
    assert alias_versions == ["1.0", "2.0"]
    assert alias_urls[0].startswith(f"{proxy_env.url}/repositories/default/all/")
    assert httpx.get(alias_urls[0], timeout=30).content == project.files[0].data
    assert proxy_env.upstream.file_hits(project.files[0].filename) == 1
    assert httpx.get(f"{proxy_env.url}/simple/{unique_project('nowhere')}/").status_code == 404


def test_every_hosted_member_with_the_name_is_listed_in_member_order(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    name = canonicalize_name(unique_project("split"))
    one = make_wheel(tmp_path, name, "1.0")
    two = make_wheel(tmp_path, name, "2.0")
    proxy_env.upload(two, "internal2")
    proxy_env.upload(one, "internal")
    proxy_env.upstream.add_project(name, ("3.0",))
    data = proxy_env.page("corp", name).json()
    assert data["versions"] == ["1.0", "2.0"]
    assert [f["filename"] for f in data["files"]] == [one.name, two.name]
    for f, path in zip(data["files"], (one, two), strict=True):
        assert httpx.get(f["url"], timeout=30).content == path.read_bytes()
    assert proxy_env.upstream.page_hits(name) == 0


def test_a_new_internal_upload_shadows_at_once(proxy_env: ProxyEnv, tmp_path: Path) -> None:
    project = proxy_env.upstream.add_project(unique_project("late"), ("5.0",))
    name = project.normalized
    assert versions_and_urls(proxy_env.page("corp", name))[0] == ["5.0"]
    proxy_env.upload(make_wheel(tmp_path, name, "1.0"), "internal")
    assert versions_and_urls(proxy_env.page("corp", name))[0] == ["1.0"]


def test_the_allow_list_opts_a_name_into_merging(proxy_env: ProxyEnv, tmp_path: Path) -> None:
    name = canonicalize_name(unique_project("shared"))
    proxy_env.upstream.add_project(name, ("2.0",))
    internal = make_wheel(tmp_path, name, "1.0")
    proxy_env.upload(internal, "internal")
    settings = json.dumps({"allow_upstream": [name.upper()]})
    proxy_env.sql("UPDATE repositories SET settings = ? WHERE name = 'optin'", (settings,))
    deadline = time.monotonic() + 10
    while True:  # repository settings reach every process within the directory's TTL
        data = proxy_env.page("optin", name).json()
        if data["versions"] == ["1.0", "2.0"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert data["versions"] == ["1.0", "2.0"]
    assert data["files"][0]["filename"] == internal.name  # hosted first
    for f in data["files"]:
        assert f["url"].startswith(f"{proxy_env.repo('optin')}/{name}/")
        response = httpx.get(f["url"], timeout=30)
        assert response.status_code == 200
        assert response.headers["etag"] == '"' + f["hashes"]["sha256"] + '"'
    # The other group does not list it: the opt-in is per group.
    assert versions_and_urls(proxy_env.page("corp", name))[0] == ["1.0"]


def test_group_root_is_the_union_of_hosted_and_cached_projects(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    hosted = canonicalize_name(unique_project("rooth"))
    proxy_env.upload(make_wheel(tmp_path, hosted, "1.0"), "internal2")
    proxied = proxy_env.upstream.add_project(unique_project("rootp"), ("1.0",)).normalized
    assert proxy_env.page("corp", proxied).status_code == 200
    root = httpx.get(f"{proxy_env.repo('corp')}/simple/", headers={"Accept": JSON_V1}, timeout=30)
    names = {p["name"] for p in root.json()["projects"]}
    assert {hosted, proxied} <= names
    html = httpx.get(f"{proxy_env.repo('corp')}/simple/", timeout=30).text
    assert f'href="{hosted}/"' in html and f'href="{proxied}/"' in html
    assert proxy_env.upstream.hits["/simple/"] == 0


def test_members_the_caller_may_not_read_are_skipped(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("hidden"), ("1.0",))
    anonymous = proxy_env.page("mixed", project.normalized)
    assert anonymous.status_code == 404
    assert proxy_env.upstream.page_hits(project.name) == 0
    admin = proxy_env.page("mixed", project.normalized, auth=ADMIN)
    assert admin.status_code == 200
    assert admin.headers["cache-control"] == "private, no-cache"
    assert proxy_env.upstream.page_hits(project.name) == 1


def test_dropping_a_group_cache_refreshes_its_proxy_members(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("grouprefresh"), ("1.0",))
    name = project.normalized
    assert versions_and_urls(proxy_env.page("corp", name))[0] == ["1.0"]
    proxy_env.upstream.add_project(name, ("1.1",))
    assert versions_and_urls(proxy_env.page("corp", name))[0] == ["1.0"]
    cache_url = f"{proxy_env.url}/api/v1/repositories/default/corp/cache/{name}"
    assert httpx.delete(cache_url, timeout=30).status_code == 401
    assert httpx.delete(cache_url, auth=ADMIN, timeout=30).status_code == 204
    assert versions_and_urls(proxy_env.page("corp", name))[0] == ["1.0", "1.1"]
    hosted_only = f"{proxy_env.url}/api/v1/repositories/default/internal/cache/{name}"
    assert httpx.delete(hosted_only, auth=ADMIN, timeout=30).status_code == 404
