"""Login rate limiting per username and per client address: 429 Too Many Requests (RFC 6585 §4)
with Retry-After (RFC 9110 §10.2.3).

A dedicated server: these tests lock accounts and the test's own address on purpose, which must
not touch the session's shared server.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelyard.shared.auth.authenticator import (
    FAILURE_WINDOW,
    MAX_FAILURES_PER_ADDRESS,
    MAX_FAILURES_PER_USER,
)
from wheelyard.testing.management import ManagementApi, http
from wheelyard.testing.server import ServerProcess

ADMIN = ("admin", "ratelimit-admin-password")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("ratelimit-server")
    with ServerProcess(data, {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1]}) as process:
        yield process


@pytest.fixture(scope="module")
def setup(server: ServerProcess) -> ManagementApi:
    return ManagementApi(server.url, ADMIN)


def _page(server: ServerProcess, auth: tuple[str, str]) -> httpx.Response:
    return http.get(f"{server.url}/repositories/default/local/simple/", auth=auth)


def _assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.request.url, r.status_code, r.text)
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= FAILURE_WINDOW


def test_repeated_wrong_passwords_lock_the_username_even_for_the_right_password(
    server: ServerProcess, setup: ManagementApi
) -> None:
    victim, password = setup.user("rl")
    bystander = setup.user("rl")

    failures = [_attempt(server, setup, victim, i) for i in range(MAX_FAILURES_PER_USER)]

    assert [r.status_code for r in failures] == [401] * MAX_FAILURES_PER_USER
    _assert_limited(setup.sign_in(victim, "wrong-password"))
    # Now the right password is refused too, on every route, until the window passes.
    _assert_limited(setup.sign_in(victim, password))
    _assert_limited(_page(server, (victim, password)))
    # Per username: someone else from the same address still gets in.
    assert setup.sign_in(*bystander).status_code == 200
    assert _page(server, bystander).status_code == 200


def _attempt(server: ServerProcess, setup: ManagementApi, username: str, i: int) -> httpx.Response:
    """A wrong password, alternately through sign-in and through Basic on a page."""
    if i % 2:
        return setup.sign_in(username, f"wrong-{i}")
    return _page(server, (username, f"wrong-{i}"))


def test_many_failures_from_one_address_lock_it_whatever_forwarded_for_says(
    server: ServerProcess, setup: ManagementApi
) -> None:
    # Runs after the per-user test: it locks this address for the rest of the window.
    user = setup.user("rl")
    assert setup.sign_in(*user).status_code == 200
    statuses = []
    for i in range(MAX_FAILURES_PER_ADDRESS + 1):
        r = http.post(
            f"{server.url}/api/v1/auth/token",
            json={"username": f"nobody-{i}-{uuid.uuid4().hex[:6]}", "password": "x"},
            # Not trusted (WHEELYARD_TRUST_PROXY_HEADERS is off): must not spread the count.
            headers={"X-Forwarded-For": f"203.0.113.{i % 250}"},
        )
        statuses.append(r.status_code)

    assert set(statuses) <= {401, 429} and statuses[-1] == 429, statuses
    _assert_limited(setup.sign_in(*user))
    bogus_token = "wy_" + "C" * 12 + "_" + secrets.token_urlsafe(32)
    _assert_limited(_page(server, ("__token__", bogus_token)))
