"""API tokens: scope, repositories, revocation, expiry, ownership and what listings show.

Issue 4 "Done when": a read-scoped token cannot upload; a token for one repository cannot read
or write another; a revoked or expired token is refused at once. Basic auth with the username
`__token__` and an API token as the password is accepted, as on PyPI
(https://pypi.org/help/#apitoken). The token's scope survives the gateway's exchange for the
internal token (docs/adr/0002; Gitea CVE-2025-68944 lost it in such an exchange), and
revocation is immediate.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wheelyard.shared.auth import tokens
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi as Setup
from wheelyard.testing.management import http, unique_name
from wheelyard.testing.server_fixtures import RunningServer
from wheelyard.testing.uploads import upload_file

TOKEN_FIELDS = {
    "id",
    "name",
    "owner",
    "scope",
    "repositories",
    "prefix",
    "created_at",
    "expires_at",
    "revoked_at",
}


class Repos:
    """Two private repositories A and B where `owner` has write on both, and C where they have
    nothing."""

    def __init__(self, setup: Setup) -> None:
        self.a, self.b, self.c = setup.repository(), setup.repository(), setup.repository()
        self.owner = setup.user("tok-owner")
        setup.grant(self.owner[0], self.a, "write")
        setup.grant(self.owner[0], self.b, "write")


@pytest.fixture(scope="module")
def setup(wheelyard_server: RunningServer) -> Setup:
    return Setup.of(wheelyard_server)


@pytest.fixture(scope="module")
def repos(setup: Setup) -> Repos:
    return Repos(setup)


def _as_token(token: str) -> tuple[str, str]:
    return ("__token__", token)


def _page(server: RunningServer, repository: str) -> str:
    return f"{server.url}/repositories/{repository}/simple/"


def _wheel(tmp_path: Path, version: str = "1.0") -> Path:
    return make_wheel(tmp_path, unique_name("tokpkg"), version)


def test_write_token_uploads_as_token_user_and_as_bearer(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos, tmp_path: Path
) -> None:
    token = setup.token(repos.owner, [repos.a], "write")["token"]

    basic = upload_file(
        wheelyard_server.upload_url(repos.a), _wheel(tmp_path, "1.0"), auth=_as_token(token)
    )
    bearer = upload_file(
        wheelyard_server.upload_url(repos.a),
        _wheel(tmp_path, "2.0"),
        headers={"Authorization": f"Bearer {token}"},
    )

    assert basic.status_code == 200, basic.text
    assert bearer.status_code == 200, bearer.text


def test_read_scoped_token_reads_but_cannot_upload(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos, tmp_path: Path
) -> None:
    # The owner may write to A; the token's read scope must still cap what it can do.
    token = setup.token(repos.owner, [repos.a], "read")["token"]

    read = http.get(_page(wheelyard_server, repos.a), auth=_as_token(token))
    read_bearer = http.get(
        _page(wheelyard_server, repos.a), headers={"Authorization": f"Bearer {token}"}
    )
    upload = upload_file(
        wheelyard_server.upload_url(repos.a), _wheel(tmp_path), auth=_as_token(token)
    )
    upload_bearer = upload_file(
        wheelyard_server.upload_url(repos.a),
        _wheel(tmp_path),
        headers={"Authorization": f"Bearer {token}"},
    )

    assert read.status_code == 200, read.text
    assert read_bearer.status_code == 200, read_bearer.text
    assert upload.status_code == 403, upload.text
    assert upload_bearer.status_code == 403, upload_bearer.text


def test_token_for_one_repository_cannot_read_or_upload_to_another(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos, tmp_path: Path
) -> None:
    # The owner has write on A and B; a token for A must open A only.
    token = setup.token(repos.owner, [repos.a], "write")["token"]
    auth = _as_token(token)
    assert http.get(_page(wheelyard_server, repos.a), auth=auth).status_code == 200

    read_b = http.get(_page(wheelyard_server, repos.b), auth=auth)
    upload_b = upload_file(wheelyard_server.upload_url(repos.b), _wheel(tmp_path), auth=auth)
    read_c = http.get(_page(wheelyard_server, repos.c), auth=auth)
    upload_c = upload_file(wheelyard_server.upload_url(repos.c), _wheel(tmp_path), auth=auth)

    assert read_b.status_code == 403, read_b.text  # the owner knows B exists
    assert upload_b.status_code == 403, upload_b.text
    assert read_c.status_code == 404, read_c.text  # C stays hidden from them
    assert upload_c.status_code == 404, upload_c.text
    # With the password the same user may use B: the refusal came from the token's scope.
    assert http.get(_page(wheelyard_server, repos.b), auth=repos.owner).status_code == 200


def test_revoked_token_is_refused_on_the_next_request(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos
) -> None:
    created = setup.token(repos.owner, [repos.a], "read")
    auth = _as_token(created["token"])
    url = _page(wheelyard_server, repos.a)
    assert http.get(url, auth=auth).status_code == 200  # now cached by the gateway

    revoked = http.delete(f"{setup.api}/tokens/{created['id']}", auth=repos.owner)

    assert revoked.status_code == 204, revoked.text
    assert http.get(url, auth=auth).status_code == 401
    bearer = http.get(url, headers={"Authorization": f"Bearer {created['token']}"})
    assert bearer.status_code == 401
    listed = http.get(f"{setup.api}/tokens", auth=repos.owner).json()
    (row,) = [t for t in listed if t["id"] == created["id"]]
    assert row["revoked_at"] is not None


def test_expired_token_is_refused(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos
) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=3)
    created = setup.token(repos.owner, [repos.a], "read", expires_at=expires)
    url = _page(wheelyard_server, repos.a)
    assert http.get(url, auth=_as_token(created["token"])).status_code == 200

    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.3)

    assert http.get(url, auth=_as_token(created["token"])).status_code == 401


def test_token_expiry_must_be_in_the_future_and_carry_a_timezone(
    setup: Setup, repos: Repos
) -> None:
    base = {"name": "ci", "repositories": [repos.a], "scope": "read"}
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()

    for expires_at in (past, naive):
        r = http.post(
            f"{setup.api}/tokens", json=base | {"expires_at": expires_at}, auth=repos.owner
        )
        assert r.status_code == 400, (expires_at, r.text)


def test_another_users_token_cannot_be_revoked_by_them(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos
) -> None:
    created = setup.token(repos.owner, [repos.a], "read")
    stranger = setup.user("tok-stranger")

    r = http.delete(f"{setup.api}/tokens/{created['id']}", auth=stranger)

    assert r.status_code == 404, r.text
    url = _page(wheelyard_server, repos.a)
    assert http.get(url, auth=_as_token(created["token"])).status_code == 200
    listed = http.get(f"{setup.api}/tokens", auth=stranger)
    assert listed.status_code == 200 and listed.json() == []
    by_admin = http.delete(f"{setup.api}/tokens/{created['id']}", auth=wheelyard_server.admin)
    assert by_admin.status_code == 204
    assert http.get(url, auth=_as_token(created["token"])).status_code == 401


def test_token_listings_never_include_the_secret_or_its_hash(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos
) -> None:
    created = setup.token(repos.owner, [repos.a, repos.b], "write")
    value: str = created["token"]
    secret = value.split("_", 2)[2]  # wy_<public id>_<secret>; the secret may hold "_"
    stored_hash = hashlib.sha256(secret.encode()).hexdigest()
    assert set(created) == TOKEN_FIELDS | {"token"}  # shown once, on creation

    own = http.get(f"{setup.api}/tokens", auth=repos.owner)
    everyone = http.get(f"{setup.api}/tokens?all=true", auth=wheelyard_server.admin)

    for listing in (own, everyone):
        assert listing.status_code == 200, listing.text
        rows = listing.json()
        assert created["id"] in [t["id"] for t in rows]
        for row in rows:
            assert set(row) == TOKEN_FIELDS, row
        for needle in (value, secret, stored_hash):
            assert needle not in listing.text
    (row,) = [t for t in own.json() if t["id"] == created["id"]]
    assert row["owner"] == repos.owner[0]
    assert row["scope"] == "write"
    assert row["repositories"] == sorted([repos.a, repos.b])
    assert value.startswith(row["prefix"]) and len(row["prefix"]) < len(value) // 2


def test_tokens_cannot_create_tokens_or_act_as_administrators(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos
) -> None:
    token = setup.token(repos.owner, [repos.a], "write")["token"]
    admin_token = setup.token(wheelyard_server.admin, [repos.a], "write")["token"]
    body = {"name": "escalate", "repositories": [repos.a, repos.b], "scope": "write"}

    for auth in (_as_token(token), _as_token(admin_token)):
        minted = http.post(f"{setup.api}/tokens", json=body, auth=auth)
        bearer = http.post(
            f"{setup.api}/tokens", json=body, headers={"Authorization": f"Bearer {auth[1]}"}
        )
        assert minted.status_code == 403, minted.text
        assert bearer.status_code == 403, bearer.text
    # Even the admin's own token is not an administrator's password.
    users = http.get(f"{setup.api}/users", auth=_as_token(admin_token))
    assert users.status_code == 403, users.text


def test_an_unknown_token_is_401_not_anonymous(
    wheelyard_server: RunningServer, repos: Repos
) -> None:
    fake = "wy_" + "A" * 12 + "_" + secrets.token_urlsafe(32)

    for auth in (_as_token(fake), _as_token("not-a-token")):
        # Even a public repository: bad credentials are never downgraded to anonymous.
        r = http.get(f"{wheelyard_server.local}/simple/", auth=auth)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == 'Basic realm="wheelyard"'


def test_the_database_holds_only_hashes_of_token_secrets_and_passwords(
    wheelyard_server: RunningServer, setup: Setup, repos: Repos
) -> None:
    created = setup.token(repos.owner, [repos.a], "read")
    _prefix, public_id, secret = created["token"].split("_", 2)
    database = wheelyard_server.process.data_dir / "wheelyard.db"

    with closing(sqlite3.connect(database, timeout=30)) as db:
        stored_hash, stored_id = db.execute(
            "SELECT secret_hash, public_id FROM api_tokens WHERE id = ?", (created["id"],)
        ).fetchone()
        (password_hash,) = db.execute(
            "SELECT password_hash FROM users WHERE username = ?", (repos.owner[0],)
        ).fetchone()

    assert stored_id == public_id  # the non-secret part finds the row
    assert stored_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert password_hash.startswith("$argon2id$")
    files = [database, database.with_name(database.name + "-wal")]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    for plain in (secret, created["token"], repos.owner[1]):
        assert plain.encode() not in raw


def test_token_secrets_are_compared_in_constant_time_even_for_unknown_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[str, str]] = []
    original = hmac.compare_digest

    def recording_compare(a: str, b: str) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", recording_compare)
    new = tokens.generate_token()
    public_id, secret = tokens.split_token(new.value) or ("", "")

    assert public_id == new.public_id and secret
    assert tokens.secret_matches(secret, new.secret_hash)
    assert not tokens.secret_matches(secret + "x", new.secret_hash)
    assert not tokens.secret_matches(secret, None)  # an unknown id: a dummy digest, same work

    assert len(compared) == 3
    for given, stored in compared:
        assert len(given) == len(stored) == 64  # sha256 digests, never the secret itself
        assert secret not in (given, stored)
