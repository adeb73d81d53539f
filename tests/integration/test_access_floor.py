"""A credential never has fewer rights than anonymous (issue 9).

A token scoped to `default/local` (or to a private repository) reading the public root
`/simple/` (the public group `default/all`) used to get 403, which pip reports only as "No
matching distribution". Every read route is checked here with every kind of credential: what
anonymous callers may read, each credential reads too, with the same answer.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server_fixtures import RunningServer

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@dataclass
class Floor:
    """A public project in `default/local`, and a user (read on a private repository only)
    with every kind of credential."""

    server: RunningServer
    project: str
    wheel: str
    credentials: dict[str, dict[str, str]]


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def floor(wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Floor:
    api = ManagementApi.of(wheelyard_server)
    project = unique_name("floorpkg")
    wheel = make_wheel(tmp_path_factory.mktemp("floor"), project, "1.0")
    assert wheelyard_server.upload(wheel).status_code == 200
    private = api.repository("private")
    user, password = api.user("floor")
    api.grant(user, private, "read")
    private_token = api.token((user, password), [private], "read")["token"]
    local_token = api.token((user, password), ["default/local"], "read")["token"]
    jwt = http.post(f"{api.api}/auth/token", json={"username": user, "password": password}).json()[
        "access_token"
    ]
    return Floor(
        wheelyard_server,
        project,
        wheel.name,
        {
            "password": _basic(user, password),
            "token for default/local": _basic("__token__", local_token),
            "token for a private repository": _basic("__token__", private_token),
            "bearer token": {"Authorization": f"Bearer {private_token}"},
            "access JWT": {"Authorization": f"Bearer {jwt}"},
        },
    )


#: Every kind of read route, at the root alias, through the group, on a hosted repository,
#: and in the management API.
READ_PATHS = [
    "/simple/",
    "/simple/{project}/",
    "/repositories/default/all/{project}/1.0/{wheel}",
    "/repositories/default/all/{project}/1.0/{wheel}.metadata",
    "/repositories/default/local/pypi/{project}/json",
    "/api/v1/repositories/default/local/projects/{project}",
    "/api/v1/repositories/default/all",
    "/api/v1/repositories/default/pypi",
]
CREDENTIALS = [
    "password",
    "token for default/local",
    "token for a private repository",
    "bearer token",
    "access JWT",
]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("path", READ_PATHS)
def test_every_read_route_answers_a_credential_as_it_answers_anonymous(
    floor: Floor, path: str, credential: str
) -> None:
    url = floor.server.url + path.format(project=floor.project, wheel=floor.wheel)
    anonymous = http.get(url, headers=JSON)
    assert anonymous.status_code == 200, (url, anonymous.text)

    with_credential = http.get(url, headers=JSON | floor.credentials[credential])

    assert with_credential.status_code == 200, (url, with_credential.text)
    assert with_credential.content == anonymous.content


Listing = Callable[[httpx.Response], set[str]]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize(
    ("path", "listing"),
    [
        ("/api/v1/repositories", lambda r: {f"{x['storage']}/{x['name']}" for x in r.json()}),
        ("/api/v1/search?q={project}", lambda r: {x["name"] for x in r.json()["results"]}),
        ("/simple/", lambda r: {p["name"] for p in r.json()["projects"]}),
    ],
)
def test_listings_show_a_credential_all_that_anonymous_sees(
    floor: Floor, credential: str, path: str, listing: Listing
) -> None:
    url = floor.server.url + path.format(project=floor.project)
    anonymous = listing(http.get(url, headers=JSON))
    assert anonymous, url

    seen = http.get(url, headers=JSON | floor.credentials[credential])

    assert seen.status_code == 200, seen.text
    assert anonymous <= listing(seen)


def test_a_token_for_one_repository_does_not_open_the_private_members_of_a_public_group(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    # The floor is anonymous rights, nothing more: through a public group the token does not
    # name, a private member the user may read stays closed to the token.
    api = ManagementApi.of(wheelyard_server)
    private = api.repository("private")
    user = api.user("floor-member")
    api.grant(user[0], private, "write")
    project = unique_name("floor-hidden")
    wheel = make_wheel(tmp_path, project, "1.0")
    uploaded = wheelyard_server.upload(
        wheel, repo=f"{wheelyard_server.url}/repositories/{private}/"
    )
    assert uploaded.status_code == 200, uploaded.text
    group = unique_name("floor-group")
    r = http.post(
        f"{api.api}/repositories",
        json={"name": group, "type": "group", "members": ["local", private]},
        auth=wheelyard_server.admin,
    )
    assert r.status_code == 201, r.text
    token = api.token(user, ["default/local"], "read")["token"]
    page = f"{wheelyard_server.url}/repositories/default/{group}/simple/{project}/"

    assert http.get(page, auth=user).status_code == 200
    assert http.get(page, auth=("__token__", token)).status_code == 404
    assert http.get(page).status_code == 404
