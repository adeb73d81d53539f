"""A 100,000-file upstream page (PyPI has pages of tens of MB) goes through the proxy whole and
right, as JSON and HTML, and one of its files is found in it (issue 9, "Resources are bounded";
the memory and time figures come from bench/large_pages.py)."""

from __future__ import annotations

import re

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.proxy_env import JSON_V1, ProxyEnv
from wheelyard.testing.server_fixtures import unique_project

FILES = 100_000


def test_a_100000_file_page_is_answered_correctly(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("huge"))
    listed = proxy_env.upstream.serve_large_page(name, FILES)
    page = httpx.get(
        f"{proxy_env.repo('pypi')}/simple/{name}/", headers={"Accept": JSON_V1}, timeout=240
    )
    assert page.status_code == 200, page.text[:300]
    data = page.json()
    assert data["name"] == name
    files = data["files"]
    assert len(files) == FILES
    assert [f["filename"] for f in files] == [e["filename"] for e in listed]
    for i in (0, 4_321, FILES - 1):
        got, want = files[i], listed[i]
        assert got["hashes"] == want["hashes"]
        assert got["size"] == want["size"]
        assert got["core-metadata"] == want["core-metadata"]
        assert got["requires-python"] == ">=3.8"
        version = f"{i // 40}.{i % 40}"
        assert got["url"] == f"{proxy_env.repo('pypi')}/{name}/{version}/{want['filename']}"
    assert len(data["versions"]) == len({f"{i // 40}.{i % 40}" for i in range(FILES)})
    html = httpx.get(f"{proxy_env.repo('pypi')}/simple/{name}/", timeout=240)
    assert html.status_code == 200
    assert len(re.findall(r"<a href=", html.text)) == FILES
    # One file deep inside the page is found without the upstream being asked for it (a HEAD
    # is answered from the listed size).
    deep = files[77_777]
    head = httpx.head(deep["url"], timeout=120)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(deep["size"])
    assert proxy_env.upstream.page_hits(name) == 1
