"""Upstreams in the real world (issue 9): TLS checked against the system trust store plus the
configured CA bundles (companies inspect TLS with their own CA), forward proxies from
HTTPS_PROXY / NO_PROXY, and failures that name their real cause.

A local HTTPS upstream with a certificate from a `trustme` CA (which no system trusts), a tiny
CONNECT proxy, and one `wheelyard serve` per configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from wheelyard.testing.connect_proxy import ConnectProxy
from wheelyard.testing.proxy_env import ADMIN, JSON_V1, start_server
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.upstream import LocalUpstream


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    with LocalUpstream(tmp_path_factory.mktemp("tls-upstream"), tls=trustme.CA()) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def ca_file(tls_upstream: LocalUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "corp-ca.pem"
    path.write_text(tls_upstream.ca_pem)
    return path


@pytest.fixture(scope="module")
def connect_proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as proxy:
        yield proxy


def _server(tmp_path_factory: pytest.TempPathFactory, upstream: LocalUpstream, **env: str):
    return start_server(
        tmp_path_factory.mktemp("server"),
        upstream.simple_url,
        WHEELYARD_ALLOW_PRIVATE_UPSTREAMS="true",
        **env,
    )


@pytest.fixture(scope="module")
def untrusting(
    tmp_path_factory: pytest.TempPathFactory, tls_upstream: LocalUpstream
) -> Iterator[ServerProcess]:
    """A server that trusts only the system store."""
    server = _server(tmp_path_factory, tls_upstream)
    yield server
    server.stop()


def _page(server: ServerProcess, repo: str, name: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/repositories/default/{repo}/simple/{name}/",
        headers={"Accept": JSON_V1},
        timeout=30,
    )


def _fetch_everything(server: ServerProcess, repo: str, upstream: LocalUpstream) -> None:
    project = upstream.add_project(unique_project("tls"), ("1.0",))
    page = _page(server, repo, project.normalized)
    assert page.status_code == 200, page.text
    (entry,) = page.json()["files"]
    download = httpx.get(entry["url"], timeout=30)
    assert download.status_code == 200
    assert download.content == project.files[0].data


def test_an_untrusted_certificate_is_refused_naming_the_cause(
    untrusting: ServerProcess, tls_upstream: LocalUpstream
) -> None:
    project = tls_upstream.add_project(unique_project("untrusted"), ("1.0",))
    response = _page(untrusting, "pypi", project.normalized)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "certificate verify failed" in detail, detail
    assert "unable to get local issuer certificate" in detail, detail
    assert "ConnectError" not in detail
    assert "certificate verify failed" in untrusting.log()


def test_a_per_upstream_ca_bundle_is_trusted(
    untrusting: ServerProcess, tls_upstream: LocalUpstream
) -> None:
    name = unique_project("corp-mirror")
    created = httpx.post(
        f"{untrusting.url}/api/v1/repositories",
        json={
            "name": name,
            "type": "proxy",
            "upstreams": [{"url": tls_upstream.simple_url, "ca_bundle": tls_upstream.ca_pem}],
        },
        auth=ADMIN,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.json()["upstreams"][0]["ca_bundle"] == tls_upstream.ca_pem
    _fetch_everything(untrusting, name, tls_upstream)
    bad = httpx.post(
        f"{untrusting.url}/api/v1/repositories",
        json={
            "name": unique_project("bad-ca"),
            "type": "proxy",
            "upstreams": [{"url": tls_upstream.simple_url, "ca_bundle": "not a certificate"}],
        },
        auth=ADMIN,
        timeout=30,
    )
    assert bad.status_code == 422, bad.text
    assert "PEM" in bad.text


def test_the_global_ca_bundle_setting_is_trusted(
    tmp_path_factory: pytest.TempPathFactory, tls_upstream: LocalUpstream, ca_file: Path
) -> None:
    server = _server(tmp_path_factory, tls_upstream, WHEELYARD_PYPI_PROXY_CA_BUNDLE=str(ca_file))
    try:
        _fetch_everything(server, "pypi", tls_upstream)
    finally:
        server.stop()


def test_upstreams_are_reached_through_https_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    tls_upstream: LocalUpstream,
    ca_file: Path,
    connect_proxy: ConnectProxy,
) -> None:
    server = _server(
        tmp_path_factory,
        tls_upstream,
        WHEELYARD_PYPI_PROXY_CA_BUNDLE=str(ca_file),
        HTTPS_PROXY=connect_proxy.url,
    )
    try:
        before = len(connect_proxy.tunnels)
        _fetch_everything(server, "pypi", tls_upstream)
        assert connect_proxy.tunnels[before:]
        assert set(connect_proxy.tunnels[before:]) == {f"127.0.0.1:{tls_upstream.port}"}
    finally:
        server.stop()


def test_no_proxy_bypasses_the_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    tls_upstream: LocalUpstream,
    ca_file: Path,
    connect_proxy: ConnectProxy,
) -> None:
    server = _server(
        tmp_path_factory,
        tls_upstream,
        WHEELYARD_PYPI_PROXY_CA_BUNDLE=str(ca_file),
        HTTPS_PROXY=connect_proxy.url,
        NO_PROXY="localhost,127.0.0.0/8",
    )
    try:
        before = len(connect_proxy.tunnels)
        _fetch_everything(server, "pypi", tls_upstream)
        assert connect_proxy.tunnels[before:] == []
    finally:
        server.stop()
