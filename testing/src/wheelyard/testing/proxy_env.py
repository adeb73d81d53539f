"""A proxy test environment: local upstreams and a `wheelyard serve` configured to use them.

`proxy_session` is one `wheelyard serve` process for the whole session, pointed at two local
upstreams, with one repository per fault scenario (so a circuit opened by one test, or a short
TTL, never leaks into another). Tests keep out of each other's way with `unique_project()`.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD, RunningServer
from wheelyard.testing.tcp_proxy import free_port
from wheelyard.testing.upstream import LocalUpstream, local_upstream

__all__ = [
    "ADMIN",
    "ProxyEnv",
    "local_upstream",
    "private_redis",
    "proxy_env",
    "proxy_session",
    "start_server",
]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
ADMIN = ("admin", ADMIN_PASSWORD)


def repositories_toml(main: str, second: str) -> str:
    """The repositories of the session server (`main`, `second`: upstream simple URLs)."""
    return f"""
[[repositories]]
name = "short"
type = "proxy"
ttl = 1
upstreams = [{{url = "{main}", timeout = 3}}]

[[repositories]]
name = "stale500"
type = "proxy"
ttl = 1
upstreams = [{{url = "{main}", timeout = 3}}]

[[repositories]]
name = "staleslow"
type = "proxy"
ttl = 1
upstreams = [{{url = "{main}", timeout = 1}}]

[[repositories]]
name = "offline"
type = "proxy"
ttl = 1
upstreams = [{{url = "{main}", timeout = 2}}]

[[repositories]]
name = "breaker"
type = "proxy"
ttl = 0
upstreams = [{{url = "{main}", timeout = 1}}]

[[repositories]]
name = "health"
type = "proxy"
ttl = 0
upstreams = [{{url = "{main}", timeout = 1}}]

[[repositories]]
name = "multi"
type = "proxy"
upstreams = [{{url = "{second}", timeout = 3}}, {{url = "{main}", timeout = 3}}]

[[repositories]]
name = "authed"
type = "proxy"
upstreams = [{{url = "{main}", timeout = 3, username = "mirror", password = "s3cret"}}]

[[repositories]]
name = "secret"
type = "proxy"
visibility = "private"
upstreams = [{{url = "{main}", timeout = 3}}]

[[repositories]]
name = "internal"
type = "hosted"

[[repositories]]
name = "internal2"
type = "hosted"

[[repositories]]
name = "corp"
type = "group"
members = ["internal", "internal2", "pypi"]

[[repositories]]
name = "optin"
type = "group"
members = ["internal", "pypi"]

[[repositories]]
name = "mixed"
type = "group"
members = ["local", "secret"]
"""


@dataclass
class ProxyEnv:
    """The session server and its upstreams."""

    server: RunningServer
    upstream: LocalUpstream  # behind every proxy repository
    second: LocalUpstream  # first upstream of `multi` only
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def repo(self, name: str) -> str:
        """`<server>/repositories/default/<name>` (no trailing slash)."""
        return f"{self.url}/repositories/default/{name}"

    def page(self, repo: str, project: str, *, json: bool = True, **kwargs: Any) -> httpx.Response:
        """GET the simple page of `project` in `repo` (JSON unless `json=False`)."""
        headers = dict(kwargs.pop("headers", {}))
        if json:
            headers.setdefault("Accept", JSON_V1)
        return httpx.get(
            f"{self.repo(repo)}/simple/{project}/", headers=headers, timeout=30, **kwargs
        )

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run SQL on the server's SQLite database (to set what no API sets yet)."""
        with sqlite3.connect(self.data_dir / "wheelyard.db", timeout=30) as conn:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
        return rows

    def upload(self, path: Path, repo: str) -> None:
        """Upload a distribution to hosted `repo` as the admin."""
        response = self.server.upload(path, repo=self.repo(repo) + "/")
        assert response.status_code == 200, response.text


def start_server(data_dir: Path, main: str, **env: str) -> ServerProcess:
    """A started `wheelyard serve` whose default `pypi` proxy is `main`."""
    return ServerProcess(
        data_dir,
        {
            "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "WHEELYARD_PYPI_PROXY": main,
            "WHEELYARD_PYPI_PROXY_TIMEOUT": "5",
            **env,
        },
    ).start()


@pytest.fixture(scope="session")
def proxy_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyEnv]:
    """The session's proxy server with its two upstreams (see the module docstring)."""
    root = tmp_path_factory.mktemp("proxy-env")
    with LocalUpstream(root / "upstream") as main, LocalUpstream(root / "second") as second:
        config = root / "wheelyard.toml"
        config.write_text(repositories_toml(main.simple_url, second.simple_url))
        data = root / "server"
        process = start_server(data, main.simple_url, WHEELYARD_CONFIG=str(config))
        try:
            yield ProxyEnv(RunningServer(process, process.url), main, second, data)
        finally:
            process.stop()


@pytest.fixture
def proxy_env(proxy_session: ProxyEnv) -> Iterator[ProxyEnv]:
    """The session's proxy server (`proxy_session`), every upstream fault removed after the
    test and a stopped upstream started again."""
    yield proxy_session
    proxy_session.upstream.heal()
    proxy_session.second.heal()
    proxy_session.upstream.start()


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A throwaway `redis-server` on a free port (so replicas under test share a cache no
    other test touches); yields its URL. Fails, never skips, when Redis is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (`make test` installs it)", pytrace=False)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
