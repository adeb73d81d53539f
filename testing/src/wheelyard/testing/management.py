"""The management API from tests: users, repositories, permissions and tokens, made as an
administrator would, each asserted to succeed."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from functools import partial
from types import SimpleNamespace
from typing import Any

import httpx

from wheelyard.testing.server_fixtures import RunningServer

#: httpx with a timeout for a loaded machine (argon2 and SQLite writes queue behind other
#: work there; httpx's default is 5 s).
http = SimpleNamespace(
    **{
        m: partial(getattr(httpx, m), timeout=30)
        for m in ("get", "post", "put", "patch", "delete", "request")
    }
)


def unique_name(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ManagementApi:
    """Users, repositories, permissions and tokens made through the management API."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.api = f"{server.url}/api/v1"

    def user(self, prefix: str = "user") -> tuple[str, str]:
        name, password = unique_name(prefix), secrets.token_urlsafe(18)
        r = http.post(
            f"{self.api}/users",
            json={"username": name, "password": password},
            auth=self.server.admin,
        )
        assert r.status_code == 201, r.text
        return name, password

    def repository(self, visibility: str = "private") -> str:
        name = unique_name("tok-repo")
        r = http.post(
            f"{self.api}/repositories",
            json={"name": name, "type": "hosted", "visibility": visibility},
            auth=self.server.admin,
        )
        assert r.status_code == 201, r.text
        return f"default/{name}"

    def grant(self, username: str, repository: str, level: str) -> None:
        r = http.put(
            f"{self.api}/repositories/{repository}/permissions/{username}",
            json={"level": level},
            auth=self.server.admin,
        )
        assert r.status_code == 200, r.text

    def token(
        self,
        auth: tuple[str, str],
        repositories: list[str],
        scope: str,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "ci", "repositories": repositories, "scope": scope}
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        r = http.post(f"{self.api}/tokens", json=body, auth=auth)
        assert r.status_code == 201, r.text
        return dict(r.json())
