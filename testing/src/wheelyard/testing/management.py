"""The management API from tests: users, repositories, permissions, tokens and sign-in, made as
an administrator would, each asserted to succeed."""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import partial
from types import SimpleNamespace
from typing import Any

import httpx

from wheelyard.testing.server_fixtures import RunningServer, unique_name

__all__ = ["ManagementApi", "http", "unique_name"]

#: httpx with a timeout for a loaded machine (argon2 and SQLite writes queue behind other
#: work there; httpx's default is 5 s).
http = SimpleNamespace(
    **{
        m: partial(getattr(httpx, m), timeout=30)
        for m in ("get", "post", "put", "patch", "delete", "request")
    }
)


class ManagementApi:
    """Users, repositories, permissions and tokens made through the management API of the
    server at `url`, as the administrator `admin`.

    Every maker asserts the status the API promises for success (201 for a creation, 200 for a
    change) and fails the test with the response body otherwise; names come from
    `unique_name`, so tests never collide on a shared server.
    """

    def __init__(self, url: str, admin: tuple[str, str]) -> None:
        self.url = url
        self.admin = admin
        self.api = f"{url}/api/v1"

    @classmethod
    def of(cls, server: RunningServer) -> ManagementApi:
        """The management API of a running server, as its bootstrap administrator."""
        return cls(server.url, server.admin)

    def user(self, prefix: str = "user") -> tuple[str, str]:
        """A new user without any permission: `(username, password)`."""
        name, password = unique_name(prefix), secrets.token_urlsafe(18)
        r = http.post(
            f"{self.api}/users",
            json={"username": name, "password": password},
            auth=self.admin,
        )
        assert r.status_code == 201, r.text
        return name, password

    def repository(self, visibility: str = "private", *, prefix: str = "repo") -> str:
        """A new, empty hosted repository in storage `default`: its `default/<name>`."""
        name = unique_name(prefix)
        r = http.post(
            f"{self.api}/repositories",
            json={"name": name, "type": "hosted", "visibility": visibility},
            auth=self.admin,
        )
        assert r.status_code == 201, r.text
        return f"default/{name}"

    def set_visibility(self, repository: str, visibility: str) -> dict[str, Any]:
        """Make `storage/name` public or private; returns the repository as the API shows it."""
        r = http.patch(
            f"{self.api}/repositories/{repository}",
            json={"visibility": visibility},
            auth=self.admin,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def grant(self, username: str, repository: str, level: str) -> None:
        """Give `username` the permission `level` (read, write, admin) on `repository`."""
        r = http.put(
            f"{self.api}/repositories/{repository}/permissions/{username}",
            json={"level": level},
            auth=self.admin,
        )
        assert r.status_code == 200, r.text

    def token(
        self,
        auth: tuple[str, str],
        repositories: list[str],
        scope: str,
        expires_at: datetime | None = None,
        *,
        name: str = "ci",
    ) -> dict[str, Any]:
        """An API token minted by the user `auth` for `repositories` with `scope`: the API's
        answer, the secret under `token` and its number under `id`."""
        body: dict[str, Any] = {"name": name, "repositories": repositories, "scope": scope}
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        r = http.post(f"{self.api}/tokens", json=body, auth=auth)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def sign_in(self, username: str, password: str) -> httpx.Response:
        """`POST /api/v1/auth/token` with JSON credentials; the response, not asserted."""
        return http.post(
            f"{self.api}/auth/token", json={"username": username, "password": password}
        )

    def access_token(self, username: str, password: str) -> str:
        """A short-lived access token (JWT) for `username`; asserts the sign-in succeeds."""
        r = self.sign_in(username, password)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])
