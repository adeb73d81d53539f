"""A first run as a new user makes it: `wheelyard serve` and `wheelyard user add` as processes.

What is checked is what a person sees: one line naming the data directory or the port (exit
status 2) before any start-up work, a password read from standard input, a clear error when
there is no terminal to ask, the start-up banner, and a fresh copy of the repository reaching
a healthy server with `make run` without installing any development tool.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelyard.testing.server import clean_env
from wheelyard.testing.server_fixtures import RunningServer
from wheelyard.testing.tcp_proxy import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wheelyard(
    *args: str, data_dir: Path, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wheelyard.cli", *args],
        env=clean_env(WHEELYARD_DATA_DIR=str(data_dir), **(env or {})),
        cwd=data_dir.parent,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    output = (result.stdout + result.stderr).decode()
    lines = output.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, output
    return lines[0]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_busy_port_is_one_line_naming_it_before_any_start_up_work(
    tmp_path: Path, listening: int
) -> None:
    data = tmp_path / "data"
    line = _one_line(_wheelyard("serve", "--port", str(listening), data_dir=data))
    assert f"127.0.0.1:{listening}" in line and "already in use" in line, line
    assert "--port" in line
    # No migration ran, no key or password was written (empty directories may be made).
    assert not [p for p in data.rglob("*") if p.is_file()]


def test_the_port_comes_from_wheelyard_port(tmp_path: Path, listening: int) -> None:
    data = tmp_path / "data"
    result = _wheelyard("serve", data_dir=data, env={"WHEELYARD_PORT": str(listening)})
    assert f":{listening}:" in _one_line(result)


def test_a_service_on_a_busy_port_is_one_line_too(tmp_path: Path, listening: int) -> None:
    result = _wheelyard("service", "index", "--port", str(listening), data_dir=tmp_path / "d")
    assert f"127.0.0.1:{listening}" in _one_line(result)


def _read_only_serve(data: Path, port: int) -> subprocess.CompletedProcess[bytes]:
    """`wheelyard serve` with `data` read-only: a read-only bind mount in a mount namespace
    of its own when we are root (root writes through any file mode), else mode 0555."""
    data.mkdir()
    args = [sys.executable, "-m", "wheelyard.cli", "serve", "--port", str(port)]
    env = clean_env(WHEELYARD_DATA_DIR=str(data))
    if os.geteuid() != 0:
        data.chmod(0o555)
        return subprocess.run(args, env=env, capture_output=True, timeout=120, check=False)
    # As root a read-only directory needs a mount namespace (util-linux's unshare); a machine
    # without one fails this test rather than skipping it.
    assert shutil.which("unshare"), "running as root: unshare(1) is needed for a read-only dir"
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, str(data), *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"mount:" not in result.stderr and b"unshare:" not in result.stderr, (
        f"cannot mount read-only here: {result.stderr.decode()}"
    )
    return result


def test_a_read_only_data_dir_is_one_line_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    line = _one_line(_read_only_serve(data, free_port()))
    assert str(data) in line and "cannot be written" in line, line
    assert "WHEELYARD_DATA_DIR" in line
    assert not list(data.iterdir())  # nothing was started, nothing written


def test_user_add_without_a_terminal_names_the_option(tmp_path: Path) -> None:
    line = _one_line(_wheelyard("user", "add", "alice", data_dir=tmp_path / "d"))
    assert "--password-stdin" in line and "Aborted" not in line, line


def test_user_add_reads_the_password_from_stdin_and_it_signs_in(
    wheelyard_server: RunningServer,
) -> None:
    name = f"first-{os.urandom(4).hex()}"
    password = "a long enough password"
    result = _wheelyard(
        "user",
        "add",
        name,
        "--password-stdin",
        data_dir=wheelyard_server.process.data_dir,
        stdin=(password + "\n").encode(),
    )
    assert result.returncode == 0, result
    r = httpx.post(
        f"{wheelyard_server.url}/api/v1/auth/token",
        json={"username": name, "password": password},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_the_start_up_banner_says_what_to_open_and_where_the_password_is(
    wheelyard_server: RunningServer,
) -> None:
    log = wheelyard_server.process.log()
    assert f"open {wheelyard_server.url}/ui/ in a browser" in log, log
    assert "WHEELYARD_ADMIN_PASSWORD" in log  # the session server is given its password
    assert f"pip install --index-url {wheelyard_server.url}/simple/" in log


# -- a fresh copy of the repository --------------------------------------------------------------

DEV_ONLY = ("pytest", "mypy", "ruff", "twine", "schemathesis", "wheelyard_testing", "seaweedfs")


def _fresh_copy(target: Path) -> None:
    """The repository as a clone of the working tree would have it: every tracked file and
    every untracked one that is not ignored (no .venv, no caches, no data)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / os.fsdecode(raw)
        if not source.is_file():  # deleted but not yet committed
            continue
        destination = target / os.fsdecode(raw)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def test_make_run_in_a_fresh_copy_serves_without_installing_dev_tools(tmp_path: Path) -> None:
    # `make test` is how the suite runs, so make(1) is there; the copy is of a git checkout.
    assert shutil.which("make") and shutil.which("git") and (ROOT / ".git").exists()
    clone = tmp_path / "wheelyard"
    _fresh_copy(clone)
    port = free_port()
    # The machine's uv cache is kept (the default one: clean_env drops every UV_ variable), so
    # runtime dependencies install without downloading; nothing is installed from elsewhere.
    env = clean_env(PORT=str(port), UV_PYTHON=sys.executable, UV_PYTHON_DOWNLOADS="never")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success
            except httpx.HTTPError:
                healthy = False
            if healthy:
                break
            time.sleep(0.5)
        output = log_path.read_text(errors="replace")
        assert healthy, f"make run never became healthy:\n{output}"
        assert f"open http://127.0.0.1:{port}/ui/ in a browser" in output, output
        installed = {
            p.name.split("-")[0].lower()
            for p in (clone / ".venv").glob("lib/python*/site-packages/*.dist-info")
        }
        assert "uvicorn" in installed and "fastapi" in installed, installed
        assert not installed & set(DEV_ONLY), sorted(installed & set(DEV_ONLY))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
