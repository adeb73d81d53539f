"""Fixtures for tests against a real `wheelyard serve` process.

`wheelyard_server` is shared by a whole test session (starting one costs seconds); tests keep
out of each other's way by using project names from `unique_project()`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from wheelyard.testing.server import ServerProcess

ADMIN_PASSWORD = "test-admin-password"  # noqa: S105  (a throwaway test server)


@dataclass
class RunningServer:
    """A live server: its base URL, admin credentials and handy URLs of `default/local`."""

    process: ServerProcess
    url: str
    admin: tuple[str, str] = ("admin", ADMIN_PASSWORD)

    @property
    def local(self) -> str:
        """Base URL of the hosted repository `default/local` (no trailing slash)."""
        return f"{self.url}/repositories/default/local"

    @property
    def local_simple(self) -> str:
        """Its simple index, with a trailing slash."""
        return f"{self.local}/simple/"

    def upload(self, path: Path, *, repo: str | None = None, **fields: str) -> httpx.Response:
        """Upload `path` with the legacy API, as twine would (form fields derived from the
        filename unless given)."""
        import hashlib

        data = path.read_bytes()
        name, version = path.name.split("-")[:2]
        if path.name.endswith(".tar.gz"):
            version = version.removesuffix(".tar.gz")
            form = {"filetype": "sdist", "pyversion": "source"}
        else:
            form = {"filetype": "bdist_wheel", "pyversion": path.name.split("-")[-3]}
        form = {
            ":action": "file_upload",
            "protocol_version": "1",
            "name": name,
            "version": version,
            "metadata_version": "2.1",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
            **form,
            **fields,
        }
        return httpx.post(
            repo or self.local + "/",
            data=form,
            files={"content": (path.name, data, "application/octet-stream")},
            auth=self.admin,
            timeout=60,
        )


def unique_project(prefix: str = "pkg") -> str:
    """A project name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def wheelyard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An embedded-mode server (SQLite, files on disk, memory cache) for the whole session."""
    data = tmp_path_factory.mktemp("wheelyard-server")
    env = {
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # Every test speaks from 127.0.0.1: a test that expects its failed sign-ins in the
        # audit log must not find them left out because other tests failed many just before
        # (tests/integration/test_auth_throttle.py covers the limit on its own server).
        "WHEELYARD_AUDIT_FAILURES_PER_MINUTE": "1000000",
        "WHEELYARD_AUDIT_FAILURES_PER_MINUTE_TOTAL": "1000000",
    }
    with ServerProcess(data, env) as proc:
        yield RunningServer(proc, proc.url)
