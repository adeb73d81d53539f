"""Access tokens (`POST /api/v1/auth/token`) at the gateway: issued for a password, accepted as
`Authorization: Bearer`, and every forgery refused with 401.

Issue 4 "Done when": a tampered, expired, wrong-algorithm (`none`, HS256 with the public key) or
wrong-key JWT is refused with 401, and so is one with `nbf` in the future or a wrong `aud` or
`iss` (RFC 7519 §4.1; RFC 8725 §2.1 and §3.1 on pinning algorithms; python-jose CVE-2024-33663
was a token signed with the public key).

The forgeries are built from the server's own key files in its data dir, so each one differs
from a token the server accepts in exactly the property under test; `test_a_token_signed_with_
the_servers_key_and_valid_claims_is_accepted` is the control that proves it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wheelyard.shared.auth.internal_jwt import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE
from wheelyard.testing.management import ManagementApi as Setup
from wheelyard.testing.management import http
from wheelyard.testing.server_fixtures import RunningServer

CHALLENGE = 'Basic realm="wheelyard"'


@pytest.fixture(scope="module")
def setup(wheelyard_server: RunningServer) -> Setup:
    return Setup.of(wheelyard_server)


@pytest.fixture(scope="module")
def private_repo(setup: Setup) -> str:
    return setup.repository("private")


@pytest.fixture(scope="module")
def reader(setup: Setup, private_repo: str) -> tuple[str, str]:
    """A user with read on `private_repo` (and nothing else)."""
    user = setup.user("jwt-reader")
    setup.grant(user[0], private_repo, "read")
    return user


def _page_url(server: RunningServer, repository: str) -> str:
    return f"{server.url}/repositories/{repository}/simple/"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_access_token_from_json_credentials_opens_a_private_repository_as_bearer(
    wheelyard_server: RunningServer, setup: Setup, private_repo: str, reader: tuple[str, str]
) -> None:
    url = _page_url(wheelyard_server, private_repo)
    assert http.get(url).status_code == 401

    r = setup.sign_in(*reader)

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 3600
    # A short-lived token: its own `exp` says the same as `expires_in`.
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert abs(claims["exp"] - time.time() - body["expires_in"]) < 30
    page = http.get(url, headers=_bearer(body["access_token"]))
    assert page.status_code == 200, page.text


def test_access_token_from_the_oauth2_password_form_works_for_the_management_api(
    wheelyard_server: RunningServer,
) -> None:
    user, password = wheelyard_server.admin
    r = http.post(
        f"{wheelyard_server.url}/api/v1/auth/token",
        data={"grant_type": "password", "username": user, "password": password},
    )

    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "bearer"
    users = http.get(
        f"{wheelyard_server.url}/api/v1/users", headers=_bearer(r.json()["access_token"])
    )
    assert users.status_code == 200, users.text
    assert "admin" in [u["username"] for u in users.json()]


def test_access_token_request_with_a_wrong_password_is_401(
    setup: Setup, reader: tuple[str, str]
) -> None:
    r = setup.sign_in(reader[0], reader[1] + "-wrong")

    assert r.status_code == 401, r.text
    assert "access_token" not in r.text


# -- forgeries -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def _server_key(server: RunningServer) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(
        (server.process.data_dir / PRIVATE_KEY_FILE).read_bytes(), password=None
    )
    assert isinstance(key, Ed25519PrivateKey)
    return key


class Forge:
    """Builds access tokens for `reader` with the server's key or without it."""

    def __init__(self, server: RunningServer, real_token: str) -> None:
        self.server = server
        self.real_token = real_token
        self.claims: dict[str, Any] = jwt.decode(real_token, options={"verify_signature": False})

    def valid_claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        return {**self.claims, "iat": now, "exp": now + 600, **changes}

    def signed(self, **changes: Any) -> str:
        return jwt.encode(self.valid_claims(**changes), _server_key(self.server), algorithm="EdDSA")

    def tampered(self) -> str:
        # The server's signature over the reader's claims, with the subject changed to admin.
        header, _payload, signature = self.real_token.split(".")
        payload = _b64(json.dumps({**self.claims, "sub": "admin"}).encode())
        return f"{header}.{payload}.{signature}"

    def alg_none(self) -> str:
        return _unsigned_parts({"alg": "none", "typ": "JWT"}, self.valid_claims()) + "."

    def hs256_with_public_key(self) -> str:
        public_pem = (self.server.process.data_dir / PUBLIC_KEY_FILE).read_bytes()
        signing_input = _unsigned_parts({"alg": "HS256", "typ": "JWT"}, self.valid_claims())
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def other_ed25519_key(self) -> str:
        return jwt.encode(self.valid_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA")


FORGERIES: dict[str, Callable[[Forge], str]] = {
    "tampered-payload": Forge.tampered,
    "expired": lambda f: f.signed(iat=int(time.time()) - 3600, exp=int(time.time()) - 60),
    "alg-none": Forge.alg_none,
    "hs256-signed-with-the-public-key": Forge.hs256_with_public_key,
    "signed-with-another-ed25519-key": Forge.other_ed25519_key,
    "nbf-in-the-future": lambda f: f.signed(nbf=int(time.time()) + 600),
    "internal-token-audience": lambda f: f.signed(aud="wheelyard-services"),
    "wrong-issuer": lambda f: f.signed(iss="someone-else"),
    "no-expiry": lambda f: jwt.encode(
        {k: v for k, v in f.valid_claims().items() if k != "exp"},
        _server_key(f.server),
        algorithm="EdDSA",
    ),
}


@pytest.fixture(scope="module")
def forge(wheelyard_server: RunningServer, setup: Setup, reader: tuple[str, str]) -> Forge:
    return Forge(wheelyard_server, setup.access_token(*reader))


def test_a_token_signed_with_the_servers_key_and_valid_claims_is_accepted(
    wheelyard_server: RunningServer, private_repo: str, forge: Forge
) -> None:
    r = http.get(_page_url(wheelyard_server, private_repo), headers=_bearer(forge.signed()))

    assert r.status_code == 200, r.text


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_a_forged_access_token_is_refused_with_401(
    wheelyard_server: RunningServer, private_repo: str, forge: Forge, kind: str
) -> None:
    token = FORGERIES[kind](forge)

    page = http.get(_page_url(wheelyard_server, private_repo), headers=_bearer(token))
    public = http.get(f"{wheelyard_server.local}/simple/", headers=_bearer(token))
    management = http.get(f"{wheelyard_server.url}/api/v1/users", headers=_bearer(token))

    for r in (page, public, management):
        # Never a silent downgrade to anonymous, even where anonymous may read.
        assert r.status_code == 401, (kind, r.request.url, r.status_code, r.text)
        assert r.headers["www-authenticate"] == CHALLENGE


def test_password_change_refuses_an_access_token_issued_before_it(
    wheelyard_server: RunningServer, setup: Setup, private_repo: str
) -> None:
    username, first_password = setup.user("jwt-rotate")
    setup.grant(username, private_repo, "read")
    url = _page_url(wheelyard_server, private_repo)
    password, new_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    # Two changes within one second, the token issued between them: a change time kept in
    # whole seconds let that token outlive the second change (it did, before the fix).
    time.sleep(1.02 - time.time() % 1)
    reset = http.patch(
        f"{wheelyard_server.url}/api/v1/users/{username}",
        json={"password": password, "current_password": first_password},
        auth=(username, first_password),
    )
    assert reset.status_code == 200, reset.text
    before = setup.access_token(username, password)
    assert http.get(url, headers=_bearer(before)).status_code == 200

    changed = http.patch(
        f"{wheelyard_server.url}/api/v1/users/{username}",
        json={"password": new_password, "current_password": password},
        auth=(username, password),
    )

    assert changed.status_code == 200, changed.text
    assert http.get(url, headers=_bearer(before)).status_code == 401
    after = setup.access_token(username, new_password)
    assert http.get(url, headers=_bearer(after)).status_code == 200


def test_deactivating_a_user_refuses_their_access_token_and_password_at_once(
    wheelyard_server: RunningServer, setup: Setup, private_repo: str
) -> None:
    username, password = setup.user("jwt-leaver")
    setup.grant(username, private_repo, "read")
    url = _page_url(wheelyard_server, private_repo)
    token = setup.access_token(username, password)
    assert http.get(url, headers=_bearer(token)).status_code == 200
    assert http.get(url, auth=(username, password)).status_code == 200

    r = http.patch(
        f"{wheelyard_server.url}/api/v1/users/{username}",
        json={"is_active": False},
        auth=wheelyard_server.admin,
    )

    assert r.status_code == 200, r.text
    assert http.get(url, headers=_bearer(token)).status_code == 401
    assert http.get(url, auth=(username, password)).status_code == 401
