"""Proxy repositories, files: fetched from the upstream once, verified, never served bad.

Everything runs against the session server (`proxy_env`) and a local upstream it proxies.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.shared.storage import blob_key_for
from wheelyard.testing.proxy_env import ProxyEnv
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.upstream import UpstreamFile, UpstreamProject

MiB = 1024 * 1024


def listed(proxy_env: ProxyEnv, repo: str, project: UpstreamProject) -> dict[str, str]:
    """filename -> our URL, from the proxy's JSON page."""
    page = proxy_env.page(repo, project.normalized)
    assert page.status_code == 200, page.text
    return {f["filename"]: f["url"] for f in page.json()["files"]}


def fetch_fails_or_is_short(url: str, expected: UpstreamFile) -> None:
    """The client gets a 502, or a body cut short (a protocol error): never a complete file."""
    try:
        response = httpx.get(url, timeout=30)
    except httpx.RemoteProtocolError:
        return  # aborted mid-body: fewer bytes than the Content-Length promised
    assert response.status_code == 502, (response.status_code, len(response.content))
    assert response.headers["content-type"] == "application/problem+json"
    assert response.content != expected.data


def spools_left(proxy_env: ProxyEnv, *, timeout: float = 10.0) -> list[str]:
    """The fetch spools left in the blob store's staging directory and the proxy's spool
    directory once every fetch ended (waiting up to `timeout` for running ones)."""
    dirs = (proxy_env.data_dir / "blobs" / "tmp", proxy_env.data_dir / "proxy-spool")
    deadline = time.monotonic() + timeout
    while True:
        left = [
            p.name for d in dirs if d.exists() for p in d.iterdir() if p.name.startswith("fetch-")
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_every_file_is_fetched_once_across_repeated_requests(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("once"), ("1.0", "2.0"), sdist=True)
    urls = listed(proxy_env, "pypi", project)
    for _round in range(2):
        for f in project.files:
            response = httpx.get(urls[f.filename], timeout=30)
            assert response.status_code == 200
            assert response.content == f.data
            assert response.headers["etag"] == f'"{f.sha256}"'
            assert response.headers["content-length"] == str(len(f.data))
            if f.metadata is not None:
                meta = httpx.get(urls[f.filename] + ".metadata", timeout=30)
                assert meta.content == f.metadata
    wheel = project.files[0]
    ranged = httpx.get(urls[wheel.filename], headers={"Range": "bytes=0-9"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == wheel.data[:10]
    head = httpx.head(urls[wheel.filename], timeout=30)
    assert head.headers["content-length"] == str(len(wheel.data))
    assert head.headers["accept-ranges"] == "bytes"
    cached = httpx.get(
        urls[wheel.filename], headers={"If-None-Match": f'"{wheel.sha256}"'}, timeout=30
    )
    assert cached.status_code == 304
    for f in project.files:
        assert proxy_env.upstream.file_hits(f.filename) == 1, f.filename
        if f.metadata is not None:
            assert proxy_env.upstream.file_hits(f.filename, metadata=True) == 1
    assert proxy_env.upstream.page_hits(project.name) == 1


def test_fifty_concurrent_cold_requests_hit_the_upstream_once(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("herd"), ("1.0",), size_bytes=2 * MiB)
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    proxy_env.upstream.slow(0.5, wheel.path)  # so every request arrives while the fetch is running

    async def herd() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(50)))

    responses = asyncio.run(herd())
    assert [r.status_code for r in responses] == [200] * 50
    digests = {hashlib.sha256(r.content).hexdigest() for r in responses}
    assert digests == {wheel.sha256}
    assert proxy_env.upstream.file_hits(wheel.filename) == 1


def test_wrong_bytes_are_never_cached_nor_served_complete(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("corrupt"), ("1.0", "2.0"))
    first, second = project.files
    urls = listed(proxy_env, "pypi", project)
    # Same length, other bytes: only the digest can tell; the stream is cut before its end.
    proxy_env.upstream.corrupt(first)
    fetch_fails_or_is_short(urls[first.filename], first)
    # Another length than the page says: known before the first byte, a clean 502.
    proxy_env.upstream.serve_bytes(second, second.data + b"trailing junk")
    response = httpx.get(urls[second.filename], timeout=30)
    assert response.status_code == 502
    # Nothing was cached: once the upstream is fixed, the right bytes are fetched and served.
    proxy_env.upstream.heal()
    for f in (first, second):
        good = httpx.get(urls[f.filename], timeout=30)
        assert good.status_code == 200
        assert good.content == f.data
        assert proxy_env.upstream.file_hits(f.filename) == 2
    assert spools_left(proxy_env) == []


def test_a_cold_file_becomes_its_blob_and_leaves_no_spool(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("adopt"), ("1.0",), size_bytes=MiB)
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == wheel.data
    # The spool was written in the store's staging directory and moved into place.
    assert spools_left(proxy_env) == []
    blob = proxy_env.data_dir / "blobs" / blob_key_for(wheel.sha256)
    assert blob.read_bytes() == wheel.data
    again = httpx.get(url, timeout=30)
    assert again.content == wheel.data
    assert proxy_env.upstream.file_hits(wheel.filename) == 1


def test_truncated_bodies_are_never_cached_nor_served_complete(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("cut"), ("1.0",), size_bytes=MiB)
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    proxy_env.upstream.truncate(wheel, len(wheel.data) // 2)
    fetch_fails_or_is_short(url, wheel)
    proxy_env.upstream.heal()
    good = httpx.get(url, timeout=30)
    assert good.status_code == 200
    assert hashlib.sha256(good.content).hexdigest() == wheel.sha256
    assert proxy_env.upstream.file_hits(wheel.filename) == 2


def test_metadata_files_are_verified_and_cached_too(proxy_env: ProxyEnv) -> None:
    # An older release: the page's fetch reads ahead the newest one's `.metadata` only.
    project = proxy_env.upstream.add_project(unique_project("meta"), ("1.0", "2.0"))
    wheel = project.files[0]
    assert wheel.metadata is not None
    url = listed(proxy_env, "pypi", project)[wheel.filename] + ".metadata"
    proxy_env.upstream.fail(500, wheel.path + ".metadata", count=1)
    assert httpx.get(url, timeout=30).status_code == 502
    good = httpx.get(url, timeout=30)
    assert good.status_code == 200
    assert good.content == wheel.metadata
    assert httpx.get(url, timeout=30).content == wheel.metadata
    assert proxy_env.upstream.file_hits(wheel.filename, metadata=True) == 2


def test_files_without_a_sha256_are_streamed_through_uncached(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("hashless"), ("1.0",), hashless=True)
    wheel = project.files[0]
    page = proxy_env.page("pypi", project.normalized).json()
    assert page["files"][0]["hashes"] == {}
    url = page["files"][0]["url"]
    for _ in range(2):
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert response.content == wheel.data
        assert response.headers["cache-control"] == "private, no-cache"
    assert proxy_env.upstream.file_hits(wheel.filename) == 2


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/"],
    ids=["aws-metadata-v4", "aws-metadata-v6"],
)
def test_upstream_redirects_to_metadata_addresses_are_refused(
    proxy_env: ProxyEnv, location: str
) -> None:
    project = proxy_env.upstream.add_project(unique_project("ssrf"), ("1.0",))
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    proxy_env.upstream.redirect(wheel.path, location)
    response = httpx.get(url, timeout=30)
    assert response.status_code == 502
    assert "SSRF" in response.json()["detail"]
    proxy_env.upstream.heal()
    # A redirect within the upstream's own (loopback) network is followed.
    proxy_env.upstream.redirect(wheel.path, proxy_env.upstream.url + wheel.path, count=1)
    assert httpx.get(url, timeout=30).content == wheel.data
    assert proxy_env.upstream.file_hits(wheel.filename) == 3


def test_a_client_that_goes_away_does_not_stop_the_fetch(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("leave"), ("1.0",), size_bytes=2 * MiB)
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    proxy_env.upstream.drip(wheel, 0.02)  # about 0.7 s for the whole file
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        next(response.iter_raw(1024))  # a few bytes, then hang up
    deadline = time.monotonic() + 10
    while proxy_env.upstream.statuses[(wheel.path, 200)] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the commit after the last byte
    proxy_env.upstream.heal()
    again = httpx.get(url, timeout=30)
    assert again.status_code == 200
    assert again.content == wheel.data
    assert proxy_env.upstream.file_hits(wheel.filename) == 1


def test_a_range_of_a_cold_file_is_answered_after_caching_it(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("coldrange"), ("1.0",))
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    tail = httpx.get(url, headers={"Range": "bytes=-22"}, timeout=30)
    assert tail.status_code == 206
    assert tail.content == wheel.data[-22:]
    assert httpx.get(url, timeout=30).content == wheel.data
    assert proxy_env.upstream.file_hits(wheel.filename) == 1


def test_a_file_url_must_name_the_listed_version(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("pathcheck"), ("1.0",))
    wheel = project.files[0]
    base = f"{proxy_env.repo('pypi')}/{canonicalize_name(project.name)}"
    assert httpx.get(f"{base}/9.9/{wheel.filename}", timeout=30).status_code == 404
    assert httpx.get(f"{base}/1.0/nothere-1.0-py3-none-any.whl", timeout=30).status_code == 404
    assert proxy_env.upstream.file_hits(wheel.filename) == 0


def test_a_cold_file_streams_to_the_client_as_its_first_bytes_arrive(
    proxy_env: ProxyEnv,
) -> None:
    project = proxy_env.upstream.add_project(
        unique_project("firstbytes"), ("1.0",), size_bytes=2 * MiB
    )
    wheel = project.files[0]
    url = listed(proxy_env, "pypi", project)[wheel.filename]
    proxy_env.upstream.drip(wheel, 0.05)  # 64 KiB every 50 ms: about 1.6 s for the whole file
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        chunks = response.iter_raw(64 * 1024)
        first = next(chunks)
        # The upstream counts an answer once its last byte is sent: not yet.
        assert proxy_env.upstream.statuses[(wheel.path, 200)] == 0
        rest = b"".join(chunks)
    assert first + rest == wheel.data
    assert proxy_env.upstream.statuses[(wheel.path, 200)] == 1
