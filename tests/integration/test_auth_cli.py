"""The operator CLI (`wheelyard user|repo|grant|token`) on a running server's database.

The commands act on the database directly; the running server then honours what they did.
With the embedded memory cache the server may keep a credential it verified for up to
`RECORD_TTL` (10 s) after a CLI change (documented in `wheelyard.cli.operators`), so the
revocation and password-change checks poll for at most that bound plus a margin; everything
else uses fresh names the server has never seen.

The entry point runs once as a real subprocess (`python -m wheelyard.cli`); the other commands
run in-process through Typer's runner against the same data dir, since each subprocess costs
seconds of imports.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wheelyard.cli.main import app
from wheelyard.shared.auth.authenticator import RECORD_TTL
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server import clean_env
from wheelyard.testing.server_fixtures import RunningServer

Cli = Callable[..., str]
GRACE = RECORD_TTL + 5  # the documented bound, plus room for a loaded machine


@pytest.fixture
def cli(wheelyard_server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """Runs `wheelyard <args>` in-process on the session server's data dir; returns stdout."""
    monkeypatch.chdir(tmp_path)  # no wheelyard.toml from elsewhere
    for key in list(os.environ):
        if key.startswith("WHEELYARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WHEELYARD_DATA_DIR", str(wheelyard_server.process.data_dir))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        return result.output

    return run


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until it is true; return how long that took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: still not so after {timeout}s")
        time.sleep(0.25)
    return time.monotonic() - started


def test_cli_entry_point_adds_a_user_who_can_sign_in_to_the_running_server(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    username, password = unique_name("cli-sub"), secrets.token_urlsafe(18)
    env = clean_env(WHEELYARD_DATA_DIR=str(wheelyard_server.process.data_dir))

    done = subprocess.run(
        [sys.executable, "-m", "wheelyard.cli", "user", "add", username, "--password", password],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr
    ManagementApi.of(wheelyard_server).access_token(username, password)


def test_cli_repo_add_user_add_and_grant_open_a_private_repository(
    wheelyard_server: RunningServer, cli: Cli
) -> None:
    repo = f"default/{unique_name('cli-priv')}"
    username, password = unique_name("cli-user"), secrets.token_urlsafe(18)

    cli("repo", "add", repo, "--visibility", "private")
    cli("user", "add", username, "--password", password)
    cli("grant", username, repo, "read")

    listed = [line.split("\t")[:3] for line in cli("repo", "list").splitlines()]
    assert [repo, "hosted", "private"] in listed
    users = dict(line.split("\t") for line in cli("user", "list").splitlines())
    assert users[username] == ""  # no flags: neither admin nor inactive
    assert users["admin"] == "admin"
    url = f"{wheelyard_server.url}/repositories/{repo}/simple/"
    _wait_for(
        lambda: http.get(url, auth=(username, password)).status_code == 200,
        GRACE,
        "the server serves the CLI's repository to the CLI's user",
    )
    assert http.get(url).status_code == 401
    # The CLI's changes are audited like the API's, with actor `cli`.
    audit = http.get(
        f"{wheelyard_server.url}/api/v1/audit?actor=cli&limit=1000", auth=wheelyard_server.admin
    ).json()
    seen = {(e["action"], e["target"]) for e in audit}
    assert {
        ("repository.create", repo),
        ("user.create", username),
        ("permission.set", repo),
    } <= seen
    assert password not in str(audit)


def test_cli_token_create_works_and_revoke_and_passwd_take_effect_within_the_bound(
    wheelyard_server: RunningServer, cli: Cli
) -> None:
    repo = f"default/{unique_name('cli-tok')}"
    username, password = unique_name("cli-owner"), secrets.token_urlsafe(18)
    new_password = secrets.token_urlsafe(18)
    cli("repo", "add", repo, "--visibility", "private")
    cli("user", "add", username, "--password", password)
    cli("grant", username, repo, "write")
    url = f"{wheelyard_server.url}/repositories/{repo}/simple/"

    out = cli("token", "create", username, "--repository", repo, "--scope", "write", "--name", "ci")

    match = re.fullmatch(r"token (\d+) \(write\): (wy_\S+)\n", out)
    assert match, out
    token_id, token = match.groups()
    _wait_for(
        lambda: http.get(url, auth=("__token__", token)).status_code == 200,
        GRACE,
        "the CLI's token opens its repository",
    )
    session = ManagementApi.of(wheelyard_server).access_token(username, password)
    assert http.get(url, headers={"Authorization": f"Bearer {session}"}).status_code == 200

    cli("token", "revoke", token_id)
    cli("user", "passwd", username, "--password", new_password)

    # Neither check counts as a failed login: a revoked token and a stale access token are
    # refused before the rate limiter would count them.
    revoked_after = _wait_for(
        lambda: http.get(url, auth=("__token__", token)).status_code == 401,
        GRACE,
        "a token revoked with the CLI is refused",
    )
    stale_after = _wait_for(
        lambda: http.get(url, headers={"Authorization": f"Bearer {session}"}).status_code == 401,
        GRACE,
        "an access token issued before `user passwd` is refused",
    )
    assert revoked_after <= GRACE and stale_after <= GRACE
    assert http.get(url, auth=(username, new_password)).status_code == 200
    assert http.get(url, auth=(username, password)).status_code == 401
    listed = http.get(f"{wheelyard_server.url}/api/v1/tokens", auth=(username, new_password))
    (row,) = [t for t in listed.json() if t["id"] == int(token_id)]
    assert row["revoked_at"] is not None and row["scope"] == "write"
