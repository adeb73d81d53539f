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
from wheelyard.testing.uploads import upload_file

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

    def upload_url(self, repository: str = "default/local") -> str:
        """Where the legacy upload API of `storage/name` takes uploads (trailing slash)."""
        return f"{self.url}/repositories/{repository}/"

    def upload(self, path: Path, *, repo: str | None = None, **fields: str) -> httpx.Response:
        """Upload `path` with the legacy API as the admin, as twine would (form fields from
        `twine_fields` unless given); `repo` is the upload URL (default: `default/local`)."""
        return upload_file(repo or self.upload_url(), path, overrides=fields, auth=self.admin)


def unique_name(prefix: str) -> str:
    """A name (user, repository, project) no other test uses: `prefix` and 10 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def unique_project(prefix: str = "pkg") -> str:
    """A project name no other test uses."""
    return unique_name(prefix)


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
