"""Password guessing is slowed down without locking anyone else out, every refused credential
is audited (the audit itself rate-limited), and the client address behind a proxy is the one
the trusted proxies vouch for (issue 9, "Accounts").

A dedicated server: these tests fail sign-ins on purpose, which must not touch the session's
shared server. It trusts 127.0.0.1 as a proxy, so each test speaks from addresses of its own
through X-Forwarded-For (documentation ranges, RFC 5737).
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.shared.auth.throttle import ACCOUNT_FREE_FAILURES, MAX_DELAY, PAIR_FREE_FAILURES
from wheelyard.testing.management import http
from wheelyard.testing.server import ServerProcess

ADMIN = ("admin", "throttle-admin-password")
_addresses = (f"{net}.{i}" for net in ("198.51.100", "203.0.113", "192.0.2") for i in range(1, 255))


def _address() -> str:
    """An address no other test speaks from."""
    return next(_addresses)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("throttle-server")
    env = {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1], "WHEELYARD_TRUSTED_PROXIES": "127.0.0.1"}
    with ServerProcess(data, env) as process:
        yield process


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _user(server: ServerProcess) -> tuple[str, str]:
    name, password = f"th-{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(18)
    r = http.post(
        f"{server.url}/api/v1/users", json={"username": name, "password": password}, auth=ADMIN
    )
    assert r.status_code == 201, r.text
    return name, password


def _token(server: ServerProcess, user: tuple[str, str]) -> str:
    r = http.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "ci", "repositories": ["default/local"], "scope": "read"},
        auth=user,
        headers={"X-Forwarded-For": _address()},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _sign_in(server: ServerProcess, user: str, password: str, address: str) -> httpx.Response:
    return http.post(
        f"{server.url}/api/v1/auth/token",
        json={"username": user, "password": password},
        headers={"X-Forwarded-For": address},
    )


def _page(server: ServerProcess, auth: tuple[str, str], address: str) -> httpx.Response:
    return http.get(
        f"{server.url}/repositories/default/local/simple/",
        auth=auth,
        headers={"X-Forwarded-For": address},
    )


def _wrong(server: ServerProcess, user: str, address: str, i: int) -> httpx.Response:
    """A wrong password, alternately through sign-in and through Basic on a page."""
    if i % 2:
        return _sign_in(server, user, f"wrong-{i}", address)
    return _page(server, (user, f"wrong-{i}"), address)


def _waits(r: httpx.Response) -> int:
    assert r.status_code == 429, (r.request.url, r.status_code, r.text)
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= MAX_DELAY
    return retry_after


def _events(server: ServerProcess, **query: str) -> list[dict[str, Any]]:
    r = http.get(
        f"{server.url}/api/v1/audit",
        params={"limit": "1000", "action": "auth.failed", **query},
        auth=ADMIN,
        headers={"X-Forwarded-For": _address()},
    )
    assert r.status_code == 200, r.text
    return list(r.json())


# -- throttling ------------------------------------------------------------------------------


def test_failures_from_one_address_refuse_no_other_users_password_nor_any_token(
    server: ServerProcess,
) -> None:
    bystander = _user(server)
    token = _token(server, bystander)
    address = _address()

    # More than the 50 that used to refuse everyone from the address.
    statuses = {
        _wrong(server, f"nobody-{uuid.uuid4().hex[:8]}", address, i).status_code for i in range(51)
    }

    assert statuses == {401}, statuses
    assert _sign_in(server, *bystander, address).status_code == 200
    assert _page(server, bystander, address).status_code == 200
    assert _page(server, ("__token__", token), address).status_code == 200


def test_a_guessing_address_waits_ever_longer_and_the_owner_is_never_locked_out(
    server: ServerProcess,
) -> None:
    victim, password = _user(server)
    token = _token(server, (victim, password))
    guesser = _address()

    first = [_wrong(server, victim, guesser, i) for i in range(PAIR_FREE_FAILURES + 1)]
    assert [r.status_code for r in first] == [401] * (PAIR_FREE_FAILURES + 1)
    # Past the free failures, this address waits before guessing this account again, even
    # with the right password (or it would learn that it was right)...
    wait = _waits(_sign_in(server, victim, password, guesser))
    assert wait <= 2
    # ...but nobody else waits: the owner elsewhere, other accounts here, any token.
    assert _sign_in(server, victim, password, _address()).status_code == 200
    assert _page(server, (victim, password), _address()).status_code == 200
    assert _sign_in(server, *_user(server), guesser).status_code == 200
    assert _page(server, ("__token__", token), guesser).status_code == 200

    time.sleep(wait + 0.1)
    assert _wrong(server, victim, guesser, 99).status_code == 401
    longer = _waits(_page(server, (victim, password), guesser))
    assert longer >= wait  # the wait doubles with each failure past the free ones
    time.sleep(longer + 0.1)
    # A backoff, not a lock: once waited, the right password gets in, and starts afresh.
    assert _page(server, (victim, password), guesser).status_code == 200
    assert _wrong(server, victim, guesser, 100).status_code == 401


def test_distributed_guessing_slows_an_account_only_from_addresses_it_never_used(
    server: ServerProcess,
) -> None:
    victim, password = _user(server)
    home = _address()
    assert _sign_in(server, victim, password, home).status_code == 200

    # One guess from each of many addresses: no address waits, the account starts to.
    guesses = [_wrong(server, victim, _address(), i) for i in range(ACCOUNT_FREE_FAILURES + 1)]

    assert {r.status_code for r in guesses} == {401}
    assert _sign_in(server, victim, password, home).status_code == 200
    assert _page(server, (victim, password), home).status_code == 200
    elsewhere = _address()
    wait = _waits(_sign_in(server, victim, password, elsewhere))
    time.sleep(wait + 0.1)
    assert _sign_in(server, victim, password, elsewhere).status_code == 200


def test_an_unknown_name_is_throttled_exactly_like_an_existing_one(server: ServerProcess) -> None:
    victim, _password = _user(server)
    unknown = f"th-{uuid.uuid4().hex[:10]}"
    answers = []
    for name in (victim, unknown):
        address = _address()
        for i in range(PAIR_FREE_FAILURES + 1):
            _wrong(server, name, address, i)
        r = _sign_in(server, name, "wrong", address)
        answers.append((r.status_code, r.json()["detail"].split(" in ")[0]))

    assert answers[0] == answers[1]
    assert answers[0][0] == 429


# -- the client address behind a proxy -----------------------------------------------------------


def _failure_from(server: ServerProcess, forwarded_for: str) -> dict[str, Any]:
    name = f"th-xff-{uuid.uuid4().hex[:10]}"
    r = _sign_in(server, name, "wrong-password", forwarded_for)
    assert r.status_code == 401, r.text
    (event,) = _events(server, actor=name)
    return event


def test_the_client_is_the_rightmost_address_a_trusted_proxy_did_not_add(
    server: ServerProcess,
) -> None:
    # The left-most entry is whatever the client wrote; each proxy appends who it talked to.
    assert _failure_from(server, "192.0.2.250, 198.51.100.250")["source_ip"] == "198.51.100.250"
    assert _failure_from(server, "203.0.113.250, 127.0.0.1")["source_ip"] == "203.0.113.250"
    assert _failure_from(server, "203.0.113.251")["source_ip"] == "203.0.113.251"


def test_forwarded_for_is_ignored_unless_the_proxy_is_listed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # WHEELYARD_TRUST_PROXY_HEADERS (X-Forwarded-Proto/Host) alone does not make any peer a
    # trusted proxy: a client talking to the server directly could write any address.
    data = tmp_path_factory.mktemp("untrusted-proxy")
    env = {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1], "WHEELYARD_TRUST_PROXY_HEADERS": "true"}
    with ServerProcess(data, env) as untrusted:
        assert _failure_from(untrusted, "192.0.2.99, 198.51.100.99")["source_ip"] == "127.0.0.1"
        assert "WHEELYARD_TRUSTED_PROXIES" in untrusted.log()


# -- every failure audited, the audit itself rate-limited ----------------------------------------


def test_every_kind_of_refused_credential_is_audited(server: ServerProcess) -> None:
    user, password = _user(server)
    token = _token(server, (user, password))
    revoked = http.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "old", "repositories": ["default/local"], "scope": "read"},
        auth=(user, password),
    ).json()
    r = http.delete(f"{server.url}/api/v1/tokens/{revoked['id']}", auth=(user, password))
    assert r.status_code == 204, r.text
    jwt = _sign_in(server, user, password, _address()).json()["access_token"]
    forged_jwt = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
    unknown_token = "wy_" + "Q" * 12 + "_" + secrets.token_urlsafe(32)
    wrong_secret = token[: len("wy_") + 12 + 1] + secrets.token_urlsafe(32)  # same public id
    page = f"{server.url}/repositories/default/local/simple/"
    attempts: dict[str, tuple[dict[str, str], str | None]] = {
        "basic": ({"Authorization": _basic(user, "wrong-password")}, user),
        "basic-token": ({"Authorization": _basic("__token__", revoked["token"])}, user),
        "bearer-token": ({"Authorization": f"Bearer {wrong_secret}"}, user),
        "jwt": ({"Authorization": f"Bearer {forged_jwt}"}, None),
        "malformed": ({"Authorization": "Basic %%%"}, None),
        "unknown token": ({"Authorization": f"Bearer {unknown_token}"}, None),
    }
    addresses = {}
    for what, (headers, _actor) in attempts.items():
        addresses[what] = _address()
        r = http.get(page, headers=headers | {"X-Forwarded-For": addresses[what]})
        assert r.status_code == 401, (what, r.text)
    addresses["sign-in"] = _address()
    assert _sign_in(server, user, "wrong-password", addresses["sign-in"]).status_code == 401

    by_address = {e["source_ip"]: e for e in _events(server)}
    seen = {what: by_address.get(address) for what, address in addresses.items()}
    assert all(seen.values()), seen
    assert {what: e["detail"]["method"] for what, e in seen.items()} == {
        "basic": "basic",
        "basic-token": "basic-token",
        "bearer-token": "bearer-token",
        "jwt": "jwt",
        "malformed": "basic",
        "unknown token": "bearer-token",
        "sign-in": "sign-in",
    }
    assert seen["basic-token"]["detail"]["reason"] == "revoked token"
    assert seen["basic-token"]["target"] == f"token:{revoked['id']}"
    assert seen["bearer-token"]["detail"]["reason"] == "wrong secret"
    assert seen["unknown token"]["detail"]["reason"] == "unknown token"
    for what, (_headers, actor) in attempts.items():
        assert seen[what]["actor"] == actor, (what, seen[what])
    text = str(list(seen.values()))
    for secret in (password, token, revoked["token"], jwt, forged_jwt, unknown_token):
        assert secret not in text


def test_a_flood_of_failures_is_counted_not_written(server: ServerProcess) -> None:
    per_source = 20  # WHEELYARD_AUDIT_FAILURES_PER_MINUTE's default
    flooder, name = _address(), f"th-flood-{uuid.uuid4().hex[:10]}"
    for i in range(per_source + 10):
        assert _page(server, (name, f"wrong-{i}"), flooder).status_code in (401, 429)

    written = _events(server, actor=name)
    assert len(written) == per_source
    # The next failure written says how many were left out.
    event = _failure_from(server, _address())
    assert event["detail"]["suppressed"] == 10
