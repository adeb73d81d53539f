"""Changing a password (issue 9, "Accounts"): your own needs the current one, an
administrator's reset of someone else's does not, and a change ends every session the user
had: access JWTs issued before it, Basic with the old password, the gateway's memory of a
password it verified.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from wheelyard.testing.management import ManagementApi, http
from wheelyard.testing.server_fixtures import RunningServer


@pytest.fixture(scope="module")
def api(wheelyard_server: RunningServer) -> ManagementApi:
    return ManagementApi.of(wheelyard_server)


def _change(
    api: ManagementApi, username: str, auth: tuple[str, str] | dict[str, str], **body: Any
) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": auth} if isinstance(auth, dict) else {"auth": auth}
    return http.patch(f"{api.api}/users/{username}", json=body, **kwargs)


def _jwt(api: ManagementApi, username: str, password: str) -> dict[str, str]:
    r = http.post(f"{api.api}/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_changing_your_own_password_needs_the_current_one(api: ManagementApi) -> None:
    username, password = api.user("pw-own")
    new = secrets.token_urlsafe(18)
    session = _jwt(api, username, password)

    missing = _change(api, username, session, password=new)
    wrong = _change(api, username, session, password=new, current_password="not-" + password)

    assert missing.status_code == 400 and "current_password" in missing.json()["detail"]
    assert wrong.status_code == 403, wrong.text
    assert http.get(f"{api.api}/tokens", auth=(username, password)).status_code == 200
    right = _change(api, username, session, password=new, current_password=password)
    assert right.status_code == 200, right.text
    assert http.get(f"{api.api}/tokens", auth=(username, new)).status_code == 200


def test_a_wrong_current_password_is_throttled_and_audited_like_a_sign_in(
    api: ManagementApi, wheelyard_server: RunningServer
) -> None:
    username, password = api.user("pw-guess")
    session = _jwt(api, username, password)

    r = _change(api, username, session, password="x" * 12, current_password="guess-" + password)

    assert r.status_code == 403
    events = http.get(
        f"{api.api}/audit",
        params={"action": "auth.failed", "actor": username},
        auth=wheelyard_server.admin,
    ).json()
    assert [e["detail"]["method"] for e in events] == ["password-change"]


def test_an_administrator_resets_someone_elses_password_without_knowing_it(
    api: ManagementApi, wheelyard_server: RunningServer
) -> None:
    username, _password = api.user("pw-reset")
    new = secrets.token_urlsafe(18)

    r = _change(api, username, wheelyard_server.admin, password=new)

    assert r.status_code == 200, r.text
    assert http.get(f"{api.api}/tokens", auth=(username, new)).status_code == 200
    # Their own password, though, an administrator changes like anyone else (asked to set
    # the very same one: were it accepted, the shared server's admin would keep working).
    admin_name, admin_password = wheelyard_server.admin
    r = _change(api, admin_name, wheelyard_server.admin, password=admin_password)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("by", ["owner", "administrator"])
def test_a_changed_password_ends_every_session_of_the_user(
    api: ManagementApi, wheelyard_server: RunningServer, by: str
) -> None:
    username, password = api.user("pw-sessions")
    tokens_url = f"{api.api}/tokens"
    session = _jwt(api, username, password)
    api_token = api.token((username, password), ["default/local"], "read")["token"]
    # Used once each, so that the gateway holds them verified in its caches.
    assert http.get(tokens_url, headers=session).status_code == 200
    assert http.get(tokens_url, auth=(username, password)).status_code == 200
    new = secrets.token_urlsafe(18)

    if by == "owner":
        r = _change(api, username, session, password=new, current_password=password)
    else:
        r = _change(api, username, wheelyard_server.admin, password=new)

    assert r.status_code == 200, r.text
    assert http.get(tokens_url, headers=session).status_code == 401
    assert http.get(tokens_url, auth=(username, password)).status_code == 401
    assert http.get(tokens_url, headers=_jwt(api, username, new)).status_code == 200
    # API tokens are credentials of their own, not sessions: they stay until revoked.
    page = f"{wheelyard_server.url}/repositories/default/local/simple/"
    assert http.get(page, auth=("__token__", api_token)).status_code == 200
