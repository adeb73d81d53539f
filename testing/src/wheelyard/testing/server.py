"""Run a real `wheelyard serve` process for integration and end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from wheelyard.testing.tcp_proxy import free_port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any WHEELYARD_/PIP_/UV_ variables, plus `extra`.

    Tests that install through Wheelyard must hide the machine's own package sources,
    or a pass may come from elsewhere.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHEELYARD_", "PIP_", "UV_")) and k != "VIRTUAL_ENV"
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


class ServerProcess:
    """`wheelyard serve` (or another `command`, e.g. `service index`) in a subprocess, on a free
    port, its output in `log_path`.

    The process runs in `workdir` and logs there (default: `data_dir`); give a process that
    shares another's data dir (a split-mode service next to an embedded server) a workdir of
    its own, so nothing of it lands in the other's data.
    """

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = ("serve",),
        log_name: str = "server.log",
        workdir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.workdir = workdir or data_dir
        self.command = command
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / log_name
        self._env = clean_env(WHEELYARD_DATA_DIR=str(data_dir), **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> ServerProcess:
        """Start the process and wait until `/healthz` answers 200 (or fail with its log)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wheelyard.cli", *self.command, "--port", str(self.port)],
                env=self._env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admin_password(self) -> str:
        """The bootstrap admin password (generated on first start when not configured)."""
        configured = self._env.get("WHEELYARD_ADMIN_PASSWORD")
        return configured or (self.data_dir / "admin-password").read_text().strip()

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
