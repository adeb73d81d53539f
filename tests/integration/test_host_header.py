"""A foreign Host header never ends up in a publicly cacheable page (issue 9, "Resources are
bounded": WHEELYARD_PUBLIC_URL / WHEELYARD_ALLOWED_HOSTS).

Against real `wheelyard serve` processes: with an allowed list, a page asked for under another
Host is answered `Cache-Control: private`; with a public URL, links use it whatever the Host;
with neither, the server warns at start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import RunningServer, unique_project

PASSWORD = "host-test-password-0123456789"
EVIL = "evil.example"


def _serve(tmp_path_factory: pytest.TempPathFactory, **env: str) -> ServerProcess:
    return ServerProcess(
        tmp_path_factory.mktemp("host"), {"WHEELYARD_ADMIN_PASSWORD": PASSWORD, **env}
    )


@pytest.fixture(scope="module")
def allowed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with _serve(tmp_path_factory, WHEELYARD_ALLOWED_HOSTS="127.0.0.1, .example.org") as proc:
        yield proc


def _publish(server: ServerProcess, tmp_path: Path) -> str:
    project = unique_project()
    running = RunningServer(server, server.url, admin=("admin", PASSWORD))
    r = running.upload(make_wheel(tmp_path, project, "1.0"))
    assert r.status_code == 200, r.text
    return canonicalize_name(project)


def _pages(server: ServerProcess, project: str) -> list[str]:
    local = f"{server.url}/repositories/default/local"
    return [
        f"{local}/simple/{project}/",
        f"{server.url}/simple/{project}/",
        f"{local}/pypi/{project}/json",
    ]


def _get(url: str, host: str) -> httpx.Response:
    r = httpx.get(url, headers={"Host": host}, timeout=30)
    assert r.status_code == 200, (url, r.text)
    return r


def _public(r: httpx.Response) -> bool:
    return "public" in r.headers.get("cache-control", "")


def test_a_foreign_host_gets_a_private_page(allowed_server: ServerProcess, tmp_path: Path) -> None:
    project = _publish(allowed_server, tmp_path)
    for url in _pages(allowed_server, project):
        for host in (EVIL, f"{EVIL}:8080", "example.org.evil.example"):
            r = _get(url, host)
            assert not _public(r), (url, host, r.headers)
            assert "private" in r.headers["cache-control"]
        # Allowed hosts keep their shareable pages.
        port = allowed_server.port
        for host in (f"127.0.0.1:{port}", "pypi.example.org", "EXAMPLE.ORG"):
            r = _get(url, host)
            assert _public(r), (url, host, r.headers)
            assert host.lower() in r.text.lower()


def test_with_a_public_url_links_never_carry_the_request_host(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    with _serve(tmp_path_factory, WHEELYARD_PUBLIC_URL="https://pypi.example.com") as server:
        project = _publish(server, tmp_path)
        for url in _pages(server, project):
            r = _get(url, EVIL)
            assert EVIL not in r.text and "https://pypi.example.com/" in r.text
            assert _public(r)
        assert "WHEELYARD_ALLOWED_HOSTS are unset" not in server.log()


def test_without_either_setting_the_server_warns_at_start(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with _serve(tmp_path_factory) as server:
        assert "WHEELYARD_PUBLIC_URL and WHEELYARD_ALLOWED_HOSTS are unset" in server.log()


def test_a_foreign_host_gets_private_web_interface_pages(
    allowed_server: ServerProcess, tmp_path: Path
) -> None:
    """The web interface's pages carry the base URL too (install and publish snippets)."""
    project = _publish(allowed_server, tmp_path)
    ui = f"{allowed_server.url}/ui/repositories/default/local"
    for url in (f"{ui}/", f"{ui}/projects/{project}/"):
        foreign = _get(url, EVIL)
        assert EVIL in foreign.text
        assert not _public(foreign) and "private" in foreign.headers["cache-control"]
        allowed = _get(url, f"127.0.0.1:{allowed_server.port}")
        assert _public(allowed), (url, allowed.headers)
