"""Private bytes (issue 9): the shared, content-addressed blob store never lets one repository
serve bytes that only another holds, nor bytes of deleted files, nor a deleted repository's
cached pages.

Against the session proxy server (`proxy_env`): a private hosted repository, the `pypi` proxy
in front of the local upstream, and the `corp` group.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi, http
from wheelyard.testing.proxy_env import ADMIN, JSON_V1, ProxyEnv
from wheelyard.testing.server_fixtures import unique_project


def list_hash_only(proxy_env: ProxyEnv, name: str, wheel: Path) -> str:
    """Make the upstream's page of `name` list `wheel` (its sha256 and size) at a URL where
    the upstream has no bytes at all; return our download URL of it through `pypi`."""
    data = wheel.read_bytes()
    body = {
        "meta": {"api-version": "1.1"},
        "name": name,
        "files": [
            {
                "filename": wheel.name,
                "url": f"{proxy_env.upstream.url}/files/none/{wheel.name}",
                "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                "size": len(data),
            }
        ],
    }
    proxy_env.upstream.serve_page(name, json.dumps(body).encode(), JSON_V1)
    page = proxy_env.page("pypi", name)
    assert page.status_code == 200, page.text
    (entry,) = page.json()["files"]
    return str(entry["url"])


def not_served(url: str, wheel: Path) -> None:
    """Anonymous GET and HEAD of `url` never give `wheel`'s bytes (the upstream has none)."""
    response = httpx.get(url, timeout=30)
    assert response.status_code == 502, (response.status_code, response.text[:200])
    assert response.content != wheel.read_bytes()
    ranged = httpx.get(url, headers={"Range": "bytes=0-99"}, timeout=30)
    assert ranged.status_code == 502


def test_an_upstream_page_listing_a_private_files_hash_does_not_serve_it(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    api = ManagementApi.of(proxy_env.server)
    private = api.repository("private")
    name = canonicalize_name(unique_project("secret"))
    wheel = make_wheel(tmp_path, name, "1.0")
    response = proxy_env.server.upload(wheel, repo=f"{proxy_env.url}/repositories/{private}/")
    assert response.status_code == 200, response.text
    assert httpx.get(f"{proxy_env.url}/repositories/{private}/simple/{name}/").status_code == 401
    url = list_hash_only(proxy_env, name, wheel)
    not_served(url, wheel)
    not_served(url, wheel)  # and not on a second try either (nothing was recorded)
    assert proxy_env.upstream.file_hits(wheel.name) >= 1  # the upstream was asked, and failed


def test_a_deleted_files_bytes_are_not_served_through_any_path(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    name = canonicalize_name(unique_project("gone"))
    wheel = make_wheel(tmp_path, name, "1.0")
    proxy_env.upload(wheel, "internal")
    hosted_url = f"{proxy_env.repo('internal')}/{name}/1.0/{wheel.name}"
    group_url = f"{proxy_env.repo('corp')}/{name}/1.0/{wheel.name}"
    assert httpx.get(hosted_url, timeout=30).content == wheel.read_bytes()
    assert httpx.get(group_url, timeout=30).content == wheel.read_bytes()
    deleted = http.delete(
        f"{proxy_env.url}/api/v1/repositories/default/internal/projects/{name}/versions/1.0/"
        f"files/{wheel.name}",
        auth=ADMIN,
    )
    assert deleted.status_code == 200, deleted.text
    assert httpx.get(hosted_url, timeout=30).status_code == 404
    assert httpx.get(hosted_url + ".metadata", timeout=30).status_code == 404
    assert httpx.get(group_url, timeout=30).status_code == 404
    not_served(list_hash_only(proxy_env, name, wheel), wheel)


def test_bytes_the_store_already_has_are_still_fetched_and_verified_from_the_upstream(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    """A public file that a hosted repository also holds: the proxy asks its own upstream
    once (the bytes are checked, not rewritten), then serves it from the store."""
    project = proxy_env.upstream.add_project(unique_project("both"), ("1.0",))
    wheel = project.files[0]
    copy = tmp_path / wheel.filename
    copy.write_bytes(wheel.data)
    proxy_env.upload(copy, "internal2")
    page = proxy_env.page("pypi", project.normalized)
    url = next(f["url"] for f in page.json()["files"] if f["filename"] == wheel.filename)
    for _round in range(3):
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert response.content == wheel.data
    assert proxy_env.upstream.file_hits(wheel.filename) == 1
    # Wrong bytes from the upstream are refused even though the store holds the right ones.
    other = proxy_env.upstream.add_project(unique_project("both-bad"), ("1.0",))
    bad = other.files[0]
    proxy_env.upload(_copy(tmp_path, bad.filename, bad.data), "internal2")
    proxy_env.upstream.corrupt(bad)
    page = proxy_env.page("pypi", other.normalized)
    bad_url = next(f["url"] for f in page.json()["files"] if f["filename"] == bad.filename)
    try:
        response = httpx.get(bad_url, timeout=30)
    except httpx.RemoteProtocolError:
        pass  # cut short: never a complete file
    else:
        assert response.status_code == 502
        assert response.content != bad.data


def _copy(directory: Path, filename: str, data: bytes) -> Path:
    path = directory / "copies" / filename
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_new_repository_never_sees_a_deleted_ones_cached_pages(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    """SQLite reused the row id of a deleted repository, and a new public repository served
    the old private one's cached pages from the cache (keys are built from ids)."""
    api = f"{proxy_env.url}/api/v1/repositories"
    name = canonicalize_name(unique_project("reuse"))
    first = unique_project("old-private")
    created = http.post(
        api, json={"name": first, "type": "hosted", "visibility": "private"}, auth=ADMIN
    )
    assert created.status_code == 201, created.text
    wheel = make_wheel(tmp_path, name, "1.0")
    uploaded = proxy_env.server.upload(wheel, repo=proxy_env.repo(first) + "/")
    assert uploaded.status_code == 200, uploaded.text
    page = httpx.get(f"{proxy_env.repo(first)}/simple/{name}/", auth=ADMIN, timeout=30)
    assert page.status_code == 200 and wheel.name in page.text
    gone = http.delete(f"{api}/default/{first}", params={"force": "true"}, auth=ADMIN)
    assert gone.status_code == 204, gone.text
    second = unique_project("new-public")
    created = http.post(api, json={"name": second, "type": "hosted"}, auth=ADMIN)
    assert created.status_code == 201, created.text
    for accept in (JSON_V1, "text/html"):
        response = httpx.get(
            f"{proxy_env.repo(second)}/simple/{name}/", headers={"Accept": accept}, timeout=30
        )
        assert response.status_code == 404, response.text[:300]
    listing = httpx.get(f"{proxy_env.repo(second)}/simple/", timeout=30)
    assert name not in listing.text
