"""Identity behind the gateway: services believe only the gateway's signed internal token.

Issue 4 "Done when": a request sent straight to a service without the gateway's JWT is refused,
as is a request that carries a forged `X-User`-style header (docs/adr/0002; trusted-header
bypasses such as authentik CVE-2024-47070; Gitea CVE-2025-68944: a scope lost when a token was
re-minted).

The index service runs on its own (`wheelyard service index`, split mode) on the data dir of the
session's embedded server, so it shares that server's SQLite database and its public key; the
control test proves a properly signed internal token does get through, so every refusal below
is about the token and not about the setup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wheelyard.shared.auth.internal_jwt import (
    AUDIENCE,
    HEADER,
    ISSUER,
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    KeyPair,
    Minter,
    load_key_pair,
)
from wheelyard.shared.auth.principal import Principal
from wheelyard.testing.management import ManagementApi, http
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import RunningServer

ADMIN = Principal(username="admin", user_id=1, is_admin=True)


@pytest.fixture(scope="module")
def index_service(
    wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`wheelyard service index` on the session server's data dir, logging in a dir of its own."""
    with ServerProcess(
        wheelyard_server.process.data_dir,
        command=("service", "index"),
        log_name="index.log",
        workdir=tmp_path_factory.mktemp("index-service"),
    ) as service:
        yield service


@pytest.fixture(scope="module")
def private_repo(wheelyard_server: RunningServer) -> str:
    return ManagementApi.of(wheelyard_server).repository("private", prefix="internal")


def _server_keys(server: RunningServer) -> KeyPair:
    data = server.process.data_dir
    return load_key_pair(
        (data / PRIVATE_KEY_FILE).read_bytes(), (data / PUBLIC_KEY_FILE).read_bytes()
    )


def _server_minter(server: RunningServer) -> Minter:
    return Minter(_server_keys(server))


def _server_private_key(server: RunningServer) -> Ed25519PrivateKey:
    key = _server_keys(server).private
    assert key is not None
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _admin_claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "admin",
        "adm": True,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
    }


def _unsigned(alg: str) -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return header + "." + _b64(json.dumps(_admin_claims()).encode())


@pytest.fixture(scope="module")
def forged_headers(wheelyard_server: RunningServer) -> dict[str, dict[str, str]]:
    """Headers that claim an identity without the gateway's signature, by kind."""
    server = wheelyard_server
    public_pem = (server.process.data_dir / PUBLIC_KEY_FILE).read_bytes()
    hs256_input = _unsigned("HS256")
    hs256 = hmac.new(public_pem, hs256_input.encode(), hashlib.sha256).digest()
    access_token = ManagementApi.of(server).access_token(*server.admin)
    return {
        "none": {},
        "x-forwarded-user": {"X-Forwarded-User": "admin"},
        "x-user": {"X-User": "admin", "X-User-Id": "1"},
        "x-remote-user": {"Remote-User": "admin", "X-Forwarded-For": "127.0.0.1"},
        "garbage-internal": {HEADER: "garbage"},
        "alg-none-internal": {HEADER: _unsigned("none") + "."},
        "hs256-with-public-key": {HEADER: f"{hs256_input}.{_b64(hs256)}"},
        "other-ed25519-key": {
            HEADER: jwt.encode(_admin_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA")
        },
        # Signed by the right key, but for the management API, not for services.
        "access-token-as-internal": {HEADER: access_token},
        # Signed by the right key, for services, but expired.
        "expired-internal": {
            HEADER: jwt.encode(
                {**_admin_claims(), "iat": int(time.time()) - 600, "exp": int(time.time()) - 300},
                _server_private_key(server),
                algorithm="EdDSA",
            )
        },
        "basic-admin-password": {
            "Authorization": "Basic "
            + base64.b64encode(f"{server.admin[0]}:{server.admin[1]}".encode()).decode()
        },
    }


FORGED = [
    "none",
    "x-forwarded-user",
    "x-user",
    "x-remote-user",
    "garbage-internal",
    "alg-none-internal",
    "hs256-with-public-key",
    "other-ed25519-key",
    "access-token-as-internal",
    "expired-internal",
    "basic-admin-password",
]


def test_a_token_signed_with_the_gateways_key_reaches_the_service(
    wheelyard_server: RunningServer, index_service: ServerProcess, private_repo: str
) -> None:
    token = _server_minter(wheelyard_server).token_for(ADMIN)

    r = http.get(
        f"{index_service.url}/repositories/{private_repo}/simple/", headers={HEADER: token}
    )

    assert r.status_code == 200, r.text


@pytest.mark.parametrize("kind", FORGED)
def test_a_request_straight_to_the_service_without_the_gateways_token_is_401(
    forged_headers: dict[str, dict[str, str]],
    index_service: ServerProcess,
    private_repo: str,
    kind: str,
) -> None:
    headers = forged_headers[kind]

    for path in (
        f"/repositories/{private_repo}/simple/",
        "/repositories/default/local/simple/",  # public: still only through the gateway
        "/api/v1/search?q=x",
    ):
        r = http.get(index_service.url + path, headers=headers)
        assert r.status_code == 401, (kind, path, r.status_code, r.text)


def test_the_gateway_drops_identity_headers_a_client_sends(
    wheelyard_server: RunningServer, private_repo: str, tmp_path: Path
) -> None:
    # Even a genuine internal token, signed with the gateway's own key: a client must not be
    # able to hand one in (it could have been captured between gateway and service).
    genuine = _server_minter(wheelyard_server).token_for(ADMIN)
    url = f"{wheelyard_server.url}/repositories/{private_repo}/simple/"
    attempts = [
        {HEADER: genuine},
        {"X-Forwarded-User": "admin"},
        {"X-User": "admin", "X-User-Id": "1", "X-Remote-User": "admin"},
        {"X-Wheelyard-User": "admin", "X-Auth-Request-User": "admin"},
    ]

    for headers in attempts:
        page = http.get(url, headers=headers)
        users = http.get(f"{wheelyard_server.url}/api/v1/users", headers=headers)
        upload = http.post(
            f"{wheelyard_server.url}/repositories/{private_repo}/",
            headers=headers,
            data={":action": "file_upload", "name": "x", "version": "1.0"},
            files={"content": ("x-1.0.tar.gz", b"x", "application/octet-stream")},
        )
        for r in (page, users, upload):
            assert r.status_code == 401, (headers, r.request.url, r.status_code, r.text)
