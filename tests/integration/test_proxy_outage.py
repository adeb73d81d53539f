"""Proxy repositories when the upstream misbehaves: stale pages, fast failures, restarts,
and replicas that share one fetch.

Each fault scenario uses its own proxy repository of the session server (`proxy_env`), so a
circuit opened here never affects another test.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import pytest

from wheelyard.proxy_cache.breaker import CircuitBreaker
from wheelyard.testing.proxy_env import ProxyEnv, start_server
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.upstream import LocalUpstream

STALE = "X-Wheelyard-Stale"


def timed(call, *args, **kwargs) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def test_upstream_500_serves_the_last_good_page_marked_stale(proxy_env: ProxyEnv) -> None:
    name = unique_project("err")
    proxy_env.upstream.add_project(name, ("1.0",))
    good = proxy_env.page("stale500", name)
    assert good.status_code == 200
    assert STALE not in good.headers
    proxy_env.upstream.fail(500, "/simple/")
    time.sleep(1.2)  # past the 1 s TTL: the page must be revalidated, and that fails
    stale = proxy_env.page("stale500", name)
    assert stale.status_code == 200
    assert stale.headers[STALE] == "true"
    assert stale.headers["warning"] == '110 - "Response is Stale"'
    assert stale.content == good.content
    # Without a copy to fall back on, the upstream's failure is a 502.
    cold = proxy_env.page("stale500", unique_project("errcold"))
    assert cold.status_code == 502
    assert cold.headers["content-type"] == "application/problem+json"
    proxy_env.upstream.heal()
    assert STALE not in proxy_env.page("stale500", name).headers


def test_a_slow_upstream_gives_the_stale_page_within_its_timeout(proxy_env: ProxyEnv) -> None:
    name = unique_project("slow")
    proxy_env.upstream.add_project(name, ("1.0",))
    assert proxy_env.page("staleslow", name).status_code == 200
    proxy_env.upstream.slow(10, "/simple/")
    time.sleep(1.2)
    stale, took = timed(proxy_env.page, "staleslow", name)
    assert stale.status_code == 200
    assert stale.headers[STALE] == "true"
    assert took < 4, took  # the repository's timeout is 1 s; nobody waits for the upstream's 10
    cold, took = timed(proxy_env.page, "staleslow", unique_project("slowcold"))
    assert cold.status_code == 504
    assert took < 4, took


def test_the_circuit_breaker_makes_requests_fast_while_the_upstream_is_down(
    proxy_env: ProxyEnv,
) -> None:
    name = unique_project("breaker")
    proxy_env.upstream.add_project(name, ("1.0",))
    assert proxy_env.page("breaker", name).status_code == 200  # ttl 0: always revalidated
    page_path = f"/simple/{name}/"
    proxy_env.upstream.slow(10, "/simple/")
    for _ in range(3):  # three timeouts of 1 s open the circuit
        response, took = timed(proxy_env.page, "breaker", name)
        assert response.headers[STALE] == "true"
        assert took >= 0.9
    asked = proxy_env.upstream.hits[page_path]
    assert asked == 4
    for _ in range(10):
        response, took = timed(proxy_env.page, "breaker", name)
        assert response.status_code == 200
        assert response.headers[STALE] == "true"
        assert took < 0.7, took  # the timeout is 1 s: nobody waited for it
    cold_name = unique_project("breakercold")
    cold, took = timed(proxy_env.page, "breaker", cold_name)
    assert cold.status_code == 502
    assert took < 0.7, took
    # While open, the upstream is not asked at all.
    assert proxy_env.upstream.hits[page_path] == asked
    assert proxy_env.upstream.page_hits(cold_name) == 0


def test_circuit_breaker_opens_after_failures_and_closes_after_a_good_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("wheelyard.proxy_cache.breaker.time.monotonic", lambda: now[0])
    breaker = CircuitBreaker(failures=3, open_seconds=30)
    for _ in range(2):
        breaker.failure("u")
    assert breaker.allow("u")
    breaker.success("u")  # a success resets the count
    for _ in range(3):
        breaker.failure("u")
    assert not breaker.allow("u") and breaker.is_open("u")
    now[0] += 31
    assert breaker.allow("u")  # one probe ...
    assert not breaker.allow("u")  # ... at a time
    breaker.failure("u")  # the probe failed: open again for the full period
    assert not breaker.allow("u")
    now[0] += 31
    assert breaker.allow("u")
    breaker.success("u")
    assert breaker.allow("u") and breaker.allow("u") and not breaker.is_open("u")


def test_cached_pages_and_files_survive_the_upstream_going_away(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("gone"), ("1.0",), sdist=True)
    page = proxy_env.page("offline", project.normalized).json()
    urls = [f["url"] for f in page["files"]]
    bodies = [httpx.get(u, timeout=30).content for u in urls]
    proxy_env.upstream.stop()
    time.sleep(1.2)
    stale = proxy_env.page("offline", project.normalized)
    assert stale.status_code == 200
    assert stale.headers[STALE] == "true"
    assert stale.json()["files"] == page["files"]
    for url, body in zip(urls, bodies, strict=True):
        assert httpx.get(url, timeout=30).content == body
    cold, took = timed(proxy_env.page, "offline", unique_project("gonecold"))
    assert cold.status_code == 502
    assert took < 4, took


def test_after_a_restart_with_the_upstream_stopped_cached_pages_and_files_are_served(
    proxy_env: ProxyEnv,
) -> None:
    """Pages live in the database and files in the blob store: a restarted server (empty
    memory cache) serves them without the upstream."""
    project = proxy_env.upstream.add_project(unique_project("restart"), ("1.0",), sdist=True)
    fresh_page = proxy_env.page("pypi", project.normalized).json()  # 10 min TTL: still fresh after
    stale_page = proxy_env.page("offline", project.normalized).json()  # 1 s TTL: stale after
    files = {f["url"]: httpx.get(f["url"], timeout=30).content for f in fresh_page["files"]}
    files.update({f["url"]: httpx.get(f["url"], timeout=30).content for f in stale_page["files"]})
    proxy_env.upstream.stop()
    process = proxy_env.server.process
    process.stop()
    process.start()
    time.sleep(1.2)
    fresh = proxy_env.page("pypi", project.normalized)
    assert fresh.status_code == 200
    assert fresh.json()["files"] == fresh_page["files"]
    stale = proxy_env.page("offline", project.normalized)
    assert stale.status_code == 200
    assert stale.headers[STALE] == "true"
    assert stale.json()["files"] == stale_page["files"]
    for url, body in files.items():
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert response.content == body
    # Through the root alias (the default group) as well.
    alias = httpx.get(f"{proxy_env.url}/simple/{project.normalized}/", timeout=30)
    assert alias.status_code == 200
    assert project.files[0].filename in alias.text


def test_two_replicas_share_one_upstream_fetch_per_page_and_file(
    tmp_path: Path, local_upstream: LocalUpstream, private_redis: str
) -> None:
    """Two processes on one database, blob store and Redis: 40 cold requests spread over
    both fetch the page once and the file once."""
    data = tmp_path / "shared"
    redis = {"WHEELYARD_CACHE_URL": private_redis}
    first = start_server(data, local_upstream.simple_url, **redis)
    try:
        second = start_server(data, local_upstream.simple_url, **redis)
        try:
            project = local_upstream.add_project(
                unique_project("replica"), ("1.0",), size_bytes=1024 * 1024
            )
            wheel = project.files[0]
            local_upstream.slow(0.5, "/simple/")
            local_upstream.slow(0.5, wheel.path)
            servers = [first.url, second.url]
            page_path = f"/repositories/default/pypi/simple/{project.normalized}/"
            file_path = f"/repositories/default/pypi/{project.normalized}/1.0/{wheel.filename}"

            async def burst(path: str) -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=60) as client:
                    return await asyncio.gather(
                        *(client.get(servers[i % 2] + path) for i in range(20))
                    )

            pages = asyncio.run(burst(page_path))
            assert [p.status_code for p in pages] == [200] * 20
            # Identical bodies from each replica (their links differ only by host).
            assert len({p.content for p in pages[0::2]}) == 1
            assert len({p.content for p in pages[1::2]}) == 1
            files = asyncio.run(burst(file_path))
            assert [f.status_code for f in files] == [200] * 20
            assert {hashlib.sha256(f.content).hexdigest() for f in files} == {wheel.sha256}
            assert local_upstream.page_hits(project.name) == 1
            assert local_upstream.file_hits(wheel.filename) == 1
        finally:
            second.stop()
    finally:
        first.stop()
