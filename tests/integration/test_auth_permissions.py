"""Who may do what: 401 vs 403 vs 404, per-repository levels, the management API's rules, and
the caching headers of private and authenticated responses.

Issue 4 "Done when": a non-admin cannot manage users, repositories, permissions or others'
tokens (403). Missing or wrong credentials get 401 with a `WWW-Authenticate: Basic` challenge
(RFC 9110 §15.5.2 and §11.6.1, RFC 7617); a caller without the permission gets 403 (RFC 9110
§15.5.4): a read-only token, an upload to a proxy repository or to an archived or quarantined
project (PEP 792). A private repository's simple page (HTML and JSON), file and `.metadata` each
need credentials, alike on every route; responses for private repositories, and to any request
that carries credentials, are `Cache-Control: private` or `no-store`, so no shared cache hands
them to another caller (RFC 9111 §3.5).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi as Setup
from wheelyard.testing.management import http, unique_name
from wheelyard.testing.server_fixtures import RunningServer
from wheelyard.testing.uploads import upload_file

CHALLENGE = 'Basic realm="wheelyard"'
JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}
HTML_ACCEPT = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def setup(wheelyard_server: RunningServer) -> Setup:
    return Setup.of(wheelyard_server)


class PrivateProject:
    """A private repository holding one wheel, a reader (read) and a writer (write)."""

    def __init__(self, server: RunningServer, setup: Setup, directory: Path) -> None:
        self.repo = setup.repository("private")
        self.reader = setup.user("perm-reader")
        self.writer = setup.user("perm-writer")
        setup.grant(self.reader[0], self.repo, "read")
        setup.grant(self.writer[0], self.repo, "write")
        self.project = unique_name("permpkg")
        self.wheel = make_wheel(directory, self.project, "1.0")
        r = upload_file(server.upload_url(self.repo), self.wheel, auth=self.writer)
        assert r.status_code == 200, r.text
        base = f"{server.url}/repositories/{self.repo}"
        self.page = f"{base}/simple/{self.project}/"
        self.file = f"{base}/{self.project}/1.0/{self.wheel.name}"
        self.metadata = self.file + ".metadata"
        self.json_api = f"{base}/pypi/{self.project}/json"


@pytest.fixture(scope="module")
def private(
    wheelyard_server: RunningServer, setup: Setup, tmp_path_factory: pytest.TempPathFactory
) -> PrivateProject:
    return PrivateProject(wheelyard_server, setup, tmp_path_factory.mktemp("perm-dists"))


# -- 401 without valid credentials, 403 without the permission ---------------------------------


def test_upload_without_credentials_is_401_with_a_basic_challenge(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, unique_name("anon"), "1.0")

    r = upload_file(wheelyard_server.upload_url("default/local"), wheel, auth=None)

    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == CHALLENGE


def test_upload_with_a_wrong_password_is_401(
    wheelyard_server: RunningServer, private: PrivateProject, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, unique_name("wrongpw"), "1.0")

    r = upload_file(
        wheelyard_server.upload_url(private.repo),
        wheel,
        auth=(private.writer[0], "not-the-password"),
    )

    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == CHALLENGE


def test_upload_with_a_valid_read_only_token_is_403(
    wheelyard_server: RunningServer, setup: Setup, private: PrivateProject, tmp_path: Path
) -> None:
    token = setup.token(private.writer, [private.repo], "read")["token"]
    wheel = make_wheel(tmp_path, unique_name("readtok"), "1.0")

    r = upload_file(wheelyard_server.upload_url(private.repo), wheel, auth=("__token__", token))

    assert r.status_code == 403, r.text


def test_upload_to_a_proxy_repository_is_403_even_for_the_admin(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, unique_name("toproxy"), "1.0")

    r = upload_file(wheelyard_server.upload_url("default/pypi"), wheel, auth=wheelyard_server.admin)

    assert r.status_code == 403, r.text
    assert "proxy" in r.json()["detail"]


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_upload_to_an_archived_or_quarantined_project_is_403(
    wheelyard_server: RunningServer, private: PrivateProject, tmp_path: Path, status: str
) -> None:
    project = unique_name(f"perm-{status}")
    first = upload_file(
        wheelyard_server.upload_url(private.repo),
        make_wheel(tmp_path, project, "1.0"),
        auth=private.writer,
    )
    assert first.status_code == 200, first.text
    # No API sets a project's status yet (PEP 792): set it in the server's database.
    database = wheelyard_server.process.data_dir / "wheelyard.db"
    with closing(sqlite3.connect(database, timeout=30)) as db, db:
        changed = db.execute("UPDATE projects SET status = ? WHERE name = ?", (status, project))
        assert changed.rowcount == 1

    r = upload_file(
        wheelyard_server.upload_url(private.repo),
        make_wheel(tmp_path, project, "2.0"),
        auth=wheelyard_server.admin,
    )

    assert r.status_code == 403, r.text
    assert status in r.json()["detail"]


# -- every read route of a private repository needs credentials --------------------------------


def _routes(private: PrivateProject) -> Iterator[tuple[str, str, dict[str, str]]]:
    yield "page-html", private.page, HTML_ACCEPT
    yield "page-json", private.page, JSON_ACCEPT
    yield "file", private.file, {}
    yield "metadata", private.metadata, {}
    yield "pypi-json", private.json_api, {}


def test_private_page_file_and_metadata_are_401_without_credentials_200_with_them(
    setup: Setup, private: PrivateProject
) -> None:
    token = setup.token(private.reader, [private.repo], "read")["token"]

    for route, url, headers in _routes(private):
        anonymous = http.get(url, headers=headers)
        assert anonymous.status_code == 401, (route, anonymous.text)
        assert anonymous.headers["www-authenticate"] == CHALLENGE
        assert private.project not in anonymous.text or route in ("page-html", "page-json")
        for auth in (private.reader, ("__token__", token)):
            allowed = http.get(url, headers=headers, auth=auth)
            assert allowed.status_code == 200, (route, allowed.text)
    wheel = http.get(private.file, auth=private.reader)
    assert wheel.content == private.wheel.read_bytes()
    metadata = http.get(private.metadata, auth=private.reader)
    assert f"Name: {private.project}" in metadata.text


def test_private_repository_is_404_for_a_signed_in_user_without_access(
    wheelyard_server: RunningServer, setup: Setup, private: PrivateProject, tmp_path: Path
) -> None:
    outsider = setup.user("perm-outsider")
    base = f"{wheelyard_server.url}/repositories/{private.repo}"

    for route, url, headers in [
        ("root", f"{base}/simple/", {}),
        *_routes(private),
        ("settings", f"{setup.api}/repositories/{private.repo}", {}),
        ("permissions", f"{setup.api}/repositories/{private.repo}/permissions", {}),
    ]:
        r = http.get(url, headers=headers, auth=outsider)
        assert r.status_code == 404, (route, r.status_code, r.text)
    upload = upload_file(
        wheelyard_server.upload_url(private.repo),
        make_wheel(tmp_path, unique_name("x"), "1.0"),
        auth=outsider,
    )
    assert upload.status_code == 404, upload.text
    listed = http.get(f"{setup.api}/repositories", auth=outsider).json()
    assert private.repo not in [f"{r['storage']}/{r['name']}" for r in listed]
    assert private.repo in [
        f"{r['storage']}/{r['name']}"
        for r in http.get(f"{setup.api}/repositories", auth=private.reader).json()
    ]


# -- levels ------------------------------------------------------------------------------------


def test_write_permission_opens_uploads_to_that_repository_only(
    wheelyard_server: RunningServer, setup: Setup, private: PrivateProject, tmp_path: Path
) -> None:
    public = setup.repository("public")
    project = unique_name("writer")

    own = upload_file(
        wheelyard_server.upload_url(private.repo),
        make_wheel(tmp_path, project, "1.0"),
        auth=private.writer,
    )
    other = upload_file(
        wheelyard_server.upload_url(public),
        make_wheel(tmp_path, project, "1.0"),
        auth=private.writer,
    )
    default = upload_file(
        wheelyard_server.upload_url("default/local"),
        make_wheel(tmp_path, project, "1.0"),
        auth=private.writer,
    )
    read_only = upload_file(
        wheelyard_server.upload_url(private.repo),
        make_wheel(tmp_path, project, "2.0"),
        auth=private.reader,
    )

    assert own.status_code == 200, own.text
    assert other.status_code == 403, other.text
    assert default.status_code == 403, default.text
    assert read_only.status_code == 403, read_only.text


def test_repository_admin_grants_on_their_repository_only(
    wheelyard_server: RunningServer, setup: Setup, private: PrivateProject
) -> None:
    owner = setup.user("perm-repoadmin")
    newcomer = setup.user("perm-newcomer")
    setup.grant(owner[0], private.repo, "admin")
    other = setup.repository("private")
    public = setup.repository("public")
    url = f"{wheelyard_server.url}/repositories/{private.repo}/simple/"
    assert http.get(url, auth=newcomer).status_code == 404

    granted = http.put(
        f"{setup.api}/repositories/{private.repo}/permissions/{newcomer[0]}",
        json={"level": "read"},
        auth=owner,
    )

    assert granted.status_code == 200, granted.text
    assert http.get(url, auth=newcomer).status_code == 200
    listed = http.get(f"{setup.api}/repositories/{private.repo}/permissions", auth=owner)
    assert {"username": newcomer[0], "level": "read"} in listed.json()
    for repository, expected in ((other, 404), (public, 403)):
        r = http.put(
            f"{setup.api}/repositories/{repository}/permissions/{newcomer[0]}",
            json={"level": "admin"},
            auth=owner,
        )
        assert r.status_code == expected, (repository, r.text)
    # Administering a repository is not administering the registry.
    deleted = http.delete(f"{setup.api}/repositories/{private.repo}", auth=owner)
    assert deleted.status_code == 403, deleted.text


def _management_calls(
    setup: Setup, private: PrivateProject, victim: str, victim_token: int
) -> list[tuple[str, str, dict[str, Any] | None]]:
    api = setup.api
    public = "default/local"
    return [
        ("GET", f"{api}/users", None),
        ("POST", f"{api}/users", {"username": unique_name("evil"), "password": "p" * 12}),
        ("PATCH", f"{api}/users/{victim}", {"password": "q" * 12}),
        ("PATCH", f"{api}/users/{private.reader[0]}", {"is_admin": True}),
        ("DELETE", f"{api}/users/{victim}", None),
        ("POST", f"{api}/repositories", {"name": unique_name("evil"), "type": "hosted"}),
        ("PATCH", f"{api}/repositories/{public}", {"visibility": "private"}),
        ("DELETE", f"{api}/repositories/{public}", None),
        ("PUT", f"{api}/repositories/{public}/permissions/{private.reader[0]}", {"level": "admin"}),
        ("DELETE", f"{api}/repositories/{public}/permissions/{victim}", None),
        ("GET", f"{api}/repositories/{public}/permissions", None),
        ("GET", f"{api}/tokens?all=true", None),
        ("GET", f"{api}/audit", None),
        ("PUT", f"{api}/repositories/{private.repo}/permissions/{victim}", {"level": "read"}),
        ("PATCH", f"{api}/repositories/{private.repo}", {"visibility": "public"}),
        ("DELETE", f"{api}/tokens/{victim_token}", None),
    ]


def test_non_admin_cannot_manage_users_repositories_permissions_or_others_tokens(
    wheelyard_server: RunningServer, setup: Setup, private: PrivateProject
) -> None:
    victim = setup.user("perm-victim")
    victim_token = setup.token(victim, ["default/local"], "read")["id"]
    users_before = http.get(f"{setup.api}/users", auth=wheelyard_server.admin).json()

    # The writer may write to the private repository, but administers nothing.
    for method, url, body in _management_calls(setup, private, victim[0], victim_token):
        r = http.request(method, url, json=body, auth=private.writer)
        expected = 404 if url.endswith(f"/tokens/{victim_token}") else 403
        assert r.status_code == expected, (method, url, r.status_code, r.text)

    assert http.get(f"{setup.api}/users", auth=wheelyard_server.admin).json() == users_before
    assert http.get(f"{wheelyard_server.local}/simple/").status_code == 200  # still public
    assert (
        http.get(
            f"{wheelyard_server.url}/repositories/default/local/simple/", auth=victim
        ).status_code
        == 200
    )
    assert http.get(private.page).status_code == 401  # still private


def test_management_api_without_credentials_is_401(setup: Setup) -> None:
    for method, path in (("GET", "/users"), ("GET", "/tokens"), ("GET", "/audit")):
        r = http.request(method, f"{setup.api}{path}")
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == CHALLENGE


# -- caching headers ---------------------------------------------------------------------------


def _is_private(response: httpx.Response) -> bool:
    directives = {d.strip().lower() for d in response.headers.get("cache-control", "").split(",")}
    return "private" in directives or "no-store" in directives


def test_private_repository_responses_are_marked_private(private: PrivateProject) -> None:
    for route, url, headers in _routes(private):
        r = http.get(url, headers=headers, auth=private.reader)
        assert r.status_code == 200, (route, r.text)
        assert _is_private(r), (route, r.headers.get("cache-control"))
        if route.startswith("page"):
            assert "authorization" in r.headers.get("vary", "").lower()


def test_any_response_to_a_request_with_credentials_is_private(
    wheelyard_server: RunningServer, setup: Setup, private: PrivateProject
) -> None:
    api = setup.api
    admin = wheelyard_server.admin
    requests: list[tuple[str, str, dict[str, Any] | None, tuple[str, str]]] = [
        ("GET", f"{wheelyard_server.local}/simple/", None, private.reader),
        ("GET", f"{api}/repositories", None, private.reader),
        ("GET", f"{api}/repositories/{private.repo}", None, private.reader),
        ("GET", f"{api}/tokens", None, private.reader),
        ("GET", f"{api}/users", None, admin),
        ("GET", f"{api}/repositories/{private.repo}/permissions", None, admin),
        ("POST", f"{api}/auth/token", {"username": admin[0], "password": admin[1]}, admin),
        ("GET", f"{api}/repositories/{private.repo}/projects/{private.project}", None, admin),
        ("GET", private.page + "missing-nothing/", None, private.reader),  # a 404
        ("GET", f"{api}/users", None, private.reader),  # a 403
    ]
    for method, url, body, auth in requests:
        r = http.request(method, url, json=body, auth=auth)
        assert _is_private(r), (method, url, r.status_code, r.headers.get("cache-control"))


def test_anonymous_public_pages_are_not_private(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_name("public")
    wheel = make_wheel(tmp_path, project, "1.0")
    assert wheelyard_server.upload(wheel).status_code == 200

    page = http.get(f"{wheelyard_server.local_simple}{project}/")
    file = http.get(f"{wheelyard_server.local}/{project}/1.0/{wheel.name}")

    for r in (page, file):
        assert r.status_code == 200
        control = r.headers.get("cache-control", "").lower()
        assert "private" not in control and "no-store" not in control, control
        assert "public" in control
