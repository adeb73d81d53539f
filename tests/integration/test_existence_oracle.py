"""No existence oracle: who may not read a private repository cannot tell it from a missing one
(issue 9: "Token creation gives the same answer for a private repository the caller cannot
read as for one that does not exist. Audit every one of these refusals").

Every refusal that names a repository is asked twice, once about a private repository and once
about a name that does not exist, by an anonymous caller and by a signed-in user without any
right; the two answers (status and body, with the name itself blanked) must be identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server_fixtures import RunningServer


@dataclass
class World:
    """A private repository holding a project, a private group, a name that exists nowhere,
    a user without rights (`bob`) and the admin of a public group (`carol`)."""

    server: RunningServer
    private: str
    private_group: str
    missing: str
    project: str
    wheel: str
    bob: tuple[str, str]
    carol: tuple[str, str]
    carols_group: str


@pytest.fixture(scope="module")
def world(wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    api = ManagementApi.of(wheelyard_server)
    admin = wheelyard_server.admin
    private = api.repository("private")
    project = unique_name("oracle")
    wheel = make_wheel(tmp_path_factory.mktemp("oracle"), project, "1.0")
    r = wheelyard_server.upload(wheel, repo=f"{wheelyard_server.url}/repositories/{private}/")
    assert r.status_code == 200, r.text
    groups = {}
    for visibility in ("private", "public"):
        name = unique_name("oracle-group")
        r = http.post(
            f"{api.api}/repositories",
            json={"name": name, "type": "group", "visibility": visibility, "members": ["local"]},
            auth=admin,
        )
        assert r.status_code == 201, r.text
        groups[visibility] = f"default/{name}"
    carol = api.user("carol")
    api.grant(carol[0], groups["public"], "admin")
    return World(
        server=wheelyard_server,
        private=private,
        private_group=groups["private"],
        missing=f"default/{unique_name('tok-repo')}",
        project=project,
        wheel=wheel.name,
        bob=api.user("bob"),
        carol=carol,
        carols_group=groups["public"],
    )


def _answer(r: httpx.Response, name: str) -> tuple[int, Any]:
    """Status and body, with `name` (the repository asked about) blanked out."""
    text = r.text.replace(name, "<repository>")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return r.status_code, body


def _ask(world: World, who: str, what: str, repo: str) -> httpx.Response:
    auth = {"anonymous": None, "bob": world.bob}[who]
    base = f"{world.server.url}/repositories/{repo}"
    api = f"{world.server.url}/api/v1/repositories/{repo}"
    release = f"{api}/projects/{world.project}/versions/1.0"
    requests: dict[str, tuple[str, str, dict[str, Any]]] = {
        "simple index": ("GET", f"{base}/simple/", {}),
        "simple page": ("GET", f"{base}/simple/{world.project}/", {}),
        "file": ("GET", f"{base}/{world.project}/1.0/{world.wheel}", {}),
        "metadata": ("GET", f"{base}/{world.project}/1.0/{world.wheel}.metadata", {}),
        "json api": ("GET", f"{base}/pypi/{world.project}/json", {}),
        "project api": ("GET", f"{api}/projects/{world.project}", {}),
        "repository": ("GET", api, {}),
        "permissions": ("GET", f"{api}/permissions", {}),
        "upload": ("POST", f"{base}/", {"data": {":action": "file_upload"}}),
        "yank": ("POST", f"{release}/yank", {"json": {}}),
        "delete release": ("DELETE", release, {}),
        "delete file": ("DELETE", f"{release}/files/{world.wheel}", {}),
        "expire cache": ("DELETE", f"{api}/cache/{world.project}", {}),
        "change repository": ("PATCH", api, {"json": {"ttl": 5}}),
        "grant": ("PUT", f"{api}/permissions/{world.bob[0]}", {"json": {"level": "read"}}),
        "revoke grant": ("DELETE", f"{api}/permissions/{world.bob[0]}", {}),
        "create token": (
            "POST",
            f"{world.server.url}/api/v1/tokens",
            {"json": {"name": "t", "repositories": [repo], "scope": "read"}},
        ),
    }
    method, url, extra = requests[what]
    return http.request(method, url, auth=auth, **extra)


WHAT = [
    "simple index",
    "simple page",
    "file",
    "metadata",
    "json api",
    "project api",
    "repository",
    "permissions",
    "upload",
    "yank",
    "delete release",
    "delete file",
    "expire cache",
    "change repository",
    "grant",
    "revoke grant",
    "create token",
]


@pytest.mark.parametrize("what", WHAT)
@pytest.mark.parametrize("who", ["anonymous", "bob"])
@pytest.mark.parametrize("hidden", ["private", "private_group"])
def test_a_private_repository_answers_exactly_like_a_missing_one(
    world: World, who: str, what: str, hidden: str
) -> None:
    repo = getattr(world, hidden)

    private = _ask(world, who, what, repo)
    missing = _ask(world, who, what, world.missing)

    assert private.status_code in (400, 401, 404), (private.status_code, private.text)
    assert _answer(private, repo) == _answer(missing, world.missing)
    if who == "anonymous" and what != "create token":
        assert private.status_code == 401  # pip asks for credentials either way


def test_a_group_admin_cannot_learn_of_a_private_repository_by_adding_it_as_a_member(
    world: World,
) -> None:
    url = f"{world.server.url}/api/v1/repositories/{world.carols_group}"

    answers = [
        http.patch(url, json={"members": ["local", repo]}, auth=world.carol)
        for repo in (world.private, world.missing)
    ]

    assert answers[0].status_code == 400, answers[0].text
    assert _answer(answers[0], world.private) == _answer(answers[1], world.missing)
    shown = http.get(url, auth=world.carol).json()
    assert shown["members"] == ["default/local"]


def test_a_group_shows_only_the_members_the_caller_may_read(
    world: World, wheelyard_server: RunningServer
) -> None:
    admin = wheelyard_server.admin
    url = f"{world.server.url}/api/v1/repositories/{world.carols_group}"
    r = http.patch(url, json={"members": ["local", world.private]}, auth=admin)
    assert r.status_code == 200, r.text
    assert r.json()["members"] == ["default/local", world.private]
    try:
        for auth in (None, world.carol, world.bob):
            assert http.get(url, auth=auth).json()["members"] == ["default/local"]
            listed = {
                f"{v['storage']}/{v['name']}": v
                for v in http.get(f"{world.server.url}/api/v1/repositories", auth=auth).json()
            }
            assert world.private not in listed
            assert listed[world.carols_group]["members"] == ["default/local"]
        # Carol changes the members she sees; the one she may not see stays.
        r = http.patch(url, json={"members": ["local"]}, auth=world.carol)
        assert r.status_code == 200, r.text
        assert r.json()["members"] == ["default/local"]
        assert http.get(url, auth=admin).json()["members"] == ["default/local", world.private]
    finally:
        http.patch(url, json={"members": ["local"]}, auth=admin)


def test_an_upload_refused_through_a_public_group_never_names_its_member(
    world: World, wheelyard_server: RunningServer
) -> None:
    admin = wheelyard_server.admin
    url = f"{world.server.url}/api/v1/repositories/{world.carols_group}"
    r = http.patch(url, json={"members": [world.private, "local"]}, auth=admin)
    assert r.status_code == 200, r.text
    try:
        for auth in (None, world.bob):
            r = http.post(
                f"{world.server.url}/repositories/{world.carols_group}/",
                data={":action": "file_upload"},
                auth=auth,
            )
            assert r.status_code in (401, 403), r.text
            assert world.private not in r.text
    finally:
        http.patch(url, json={"members": ["local"]}, auth=admin)


def test_another_users_token_answers_like_a_token_that_does_not_exist(world: World) -> None:
    api = ManagementApi.of(world.server)
    token = api.token(world.carol, [world.carols_group], "read")

    others = http.delete(f"{world.server.url}/api/v1/tokens/{token['id']}", auth=world.bob)
    nobodys = http.delete(f"{world.server.url}/api/v1/tokens/987654321", auth=world.bob)

    assert others.status_code == nobodys.status_code == 404
    assert _answer(others, str(token["id"])) == _answer(nobodys, "987654321")


def test_sign_in_answers_an_unknown_user_like_a_wrong_password(world: World) -> None:
    url = f"{world.server.url}/api/v1/auth/token"

    wrong = http.post(url, json={"username": world.bob[0], "password": "not-the-password"})
    unknown = http.post(url, json={"username": unique_name("nobody"), "password": "x" * 12})

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
