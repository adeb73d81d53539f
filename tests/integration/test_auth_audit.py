"""The audit log: who did what, when, from where; for administrators only; never a secret.

Issue 4: audit events for logins, uploads, deletions, yanks, permission and token changes;
`GET /api/v1/audit` for admins. Logs and audit records never contain tokens, Basic passwords or
URL userinfo, on failing paths as well as successful ones (clients that leaked them: pypa/pip#5394,
astral-sh/uv#10554, rust-lang/cargo#9822).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server_fixtures import RunningServer
from wheelyard.testing.uploads import upload_file


class Story:
    """One user's life on the server, every step of it audited; `secrets` lists what was used."""

    def __init__(self, server: RunningServer, directory: Path) -> None:
        api = f"{server.url}/api/v1"
        admin = server.admin
        setup = ManagementApi.of(server)
        self.repo = setup.repository("private", prefix="audit")
        self.user, self.password = setup.user("auditee")
        self.project = unique_name("auditpkg")

        def ok(r: httpx.Response, status: int = 200) -> httpx.Response:
            assert r.status_code == status, (r.request.method, r.request.url, r.text)
            return r

        setup.grant(self.user, self.repo, "write")
        mine = (self.user, self.password)
        ok(setup.sign_in(self.user, self.password))
        wrong = setup.sign_in(self.user, "wrong-" + self.password)
        assert wrong.status_code == 401
        created = setup.token(mine, [self.repo], "write")
        self.token_id = created["id"]
        self.token = created["token"]
        self.wheel = make_wheel(directory, self.project, "1.0")
        ok(upload_file(server.upload_url(self.repo), self.wheel, auth=("__token__", self.token)))
        release = f"{api}/repositories/{self.repo}/projects/{self.project}/versions/1.0"
        ok(http.post(f"{release}/yank", json={"reason": "oops"}, auth=mine))
        ok(http.delete(f"{release}/files/{self.wheel.name}", auth=admin))
        ok(http.delete(f"{api}/tokens/{self.token_id}", auth=mine), 204)
        ok(http.delete(f"{api}/repositories/{self.repo}/permissions/{self.user}", auth=admin), 204)

        # Failing paths with secrets in them: a revoked token, URL userinfo with a wrong
        # password, a malformed upload with the (then valid) password, a bogus bearer token.
        self.url_password = secrets.token_urlsafe(18)
        userinfo = server.url.replace("://", f"://{self.user}:{self.url_password}@")
        self.bogus_bearer = "wy_" + "B" * 12 + "_" + secrets.token_urlsafe(32)
        assert (
            http.get(
                f"{server.url}/repositories/{self.repo}/simple/", auth=("__token__", self.token)
            ).status_code
            == 401
        )
        assert http.get(f"{userinfo}/repositories/{self.repo}/simple/").status_code == 401
        assert (
            http.post(
                f"{server.url}/repositories/default/local/", auth=admin, data={"x": "y"}
            ).status_code
            == 400
        )
        assert (
            http.get(
                f"{server.url}/api/v1/tokens",
                headers={"Authorization": f"Bearer {self.bogus_bearer}"},
            ).status_code
            == 401
        )

    @property
    def secrets(self) -> list[str]:
        token_secret = self.token.split("_", 2)[2]
        return [
            self.password,
            "wrong-" + self.password,
            self.token,
            token_secret,
            hashlib.sha256(token_secret.encode()).hexdigest(),
            self.url_password,
            self.bogus_bearer,
        ]


@pytest.fixture(scope="module")
def story(wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Story:
    return Story(wheelyard_server, tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def events(wheelyard_server: RunningServer, story: Story) -> list[dict[str, Any]]:
    r = http.get(f"{wheelyard_server.url}/api/v1/audit?limit=1000", auth=wheelyard_server.admin)
    assert r.status_code == 200, r.text
    return list(r.json())


def _one(events: list[dict[str, Any]], action: str, target: str) -> dict[str, Any]:
    found = [e for e in events if e["action"] == action and e["target"] == target]
    assert len(found) == 1, (action, target, [e for e in events if e["action"] == action][:5])
    return found[0]


def test_audit_records_logins_uploads_yanks_deletions_permission_and_token_changes(
    story: Story, events: list[dict[str, Any]]
) -> None:
    admin, user = "admin", story.user
    file_target = f"{story.repo}/{story.project}/{story.wheel.name}"
    release_target = f"{story.repo}/{story.project}/1.0"
    token_target = f"token:{story.token_id}"
    expected = [
        ("repository.create", story.repo, admin),
        ("user.create", user, admin),
        ("permission.set", story.repo, admin),
        ("token.create", token_target, user),
        ("file.upload", file_target, user),
        ("release.yank", release_target, user),
        ("file.delete", release_target, admin),
        ("token.revoke", token_target, user),
        ("permission.remove", story.repo, admin),
    ]

    for action, target, actor in expected:
        event = _one(events, action, target)
        assert event["actor"] == actor, event
        assert event["source_ip"] == "127.0.0.1", event
        assert event["at"], event
    logins = [e for e in events if e["actor"] == user and e["action"].startswith("auth.")]
    assert sorted(
        (e["action"], e["detail"].get("method"), e["detail"].get("reason")) for e in logins
    ) == [
        ("auth.failed", "basic", "wrong password"),  # URL userinfo
        ("auth.failed", "basic-token", "revoked token"),
        ("auth.failed", "sign-in", "wrong password"),
        ("auth.login", None, None),
    ]
    assert all(e["source_ip"] == "127.0.0.1" for e in logins)
    bogus = [e for e in events if e["target"] == "token:wy_" + "B" * 12 + "_"]
    assert [(e["detail"]["method"], e["detail"]["reason"]) for e in bogus] == [
        ("bearer-token", "unknown token")
    ]
    assert _one(events, "permission.set", story.repo)["detail"] == {
        "user": user,
        "level": "write",
    }
    # Newest first, each event once.
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)


def test_audit_json_and_server_log_hold_no_secret(
    wheelyard_server: RunningServer, story: Story, events: list[dict[str, Any]]
) -> None:
    audit_text = str(events)
    log = wheelyard_server.process.log()

    for secret in story.secrets:
        assert secret not in audit_text
        assert secret not in log


def test_audit_is_for_administrators_only(wheelyard_server: RunningServer, story: Story) -> None:
    url = f"{wheelyard_server.url}/api/v1/audit"
    setup = ManagementApi.of(wheelyard_server)
    admin = wheelyard_server.admin
    admin_token = setup.token(admin, ["default/local"], "write", name="audit")["token"]

    assert http.get(url).status_code == 401
    assert http.get(url, auth=(story.user, story.password)).status_code == 403
    assert http.get(url, auth=("__token__", admin_token)).status_code == 403
    filtered = http.get(f"{url}?actor={story.user}", auth=wheelyard_server.admin)
    assert filtered.status_code == 200
    assert filtered.json() and {e["actor"] for e in filtered.json()} == {story.user}
