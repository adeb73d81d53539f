"""Run the real packaging clients (pip, uv, twine, poetry, pdm) from end-to-end tests.

Every client runs in a subprocess with an environment built on `clean_env()`, so the machine's
own package sources (pip.conf, PIP_*/UV_* variables, find-links) cannot make a test pass.
Output is captured (stdout and stderr together) and shown in full when an expectation fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, DistributionPackage, ProjectPage

from wheelyard.testing.server import clean_env
from wheelyard.testing.tcp_proxy import TcpProxy

#: Keeps rich/click output on one line and free of colour codes, so tests can match it.
PLAIN_OUTPUT = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "400"}


@dataclass
class Outcome:
    """What a client run did: its command, exit status and combined output."""

    args: list[str]
    returncode: int
    output: str

    @property
    def text(self) -> str:
        """The output with every run of whitespace collapsed to one space: rich wraps long
        lines at 80 columns whatever COLUMNS says, so match messages against this."""
        return " ".join(self.output.split())

    def describe(self) -> str:
        """The command, exit status and output, for assertion messages."""
        return f"$ {' '.join(self.args)}\nexit status {self.returncode}\n{self.output}"

    def succeeded(self) -> Outcome:
        """Assert exit status 0; returns self for chaining."""
        assert self.returncode == 0, self.describe()
        return self

    def failed(self) -> Outcome:
        """Assert a non-zero exit status; returns self for chaining."""
        assert self.returncode != 0, self.describe()
        return self


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 240,
) -> Outcome:
    """Run `args` with `env` (default: `clean_env()` plus plain output) and capture its output."""
    argv = [os.fspath(a) for a in args]
    completed = subprocess.run(
        argv,
        env=env if env is not None else clean_env(**PLAIN_OUTPUT),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    return Outcome(argv, completed.returncode, completed.stdout.decode(errors="replace"))


def uv_binary() -> str:
    """The uv of the dev environment (`.venv/bin/uv`), else the one on PATH."""
    sibling = Path(sys.executable).with_name("uv")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("uv")
    assert found, "uv is neither next to the test interpreter nor on PATH"
    return found


def twine_command() -> list[str]:
    """twine from the dev environment (twine 7)."""
    return [sys.executable, "-m", "twine"]


def uv_tool_command(requirement: str, command: str, *args: str) -> list[str]:
    """`uv tool run` of `command` installed from `requirement` (PyPI), on this interpreter."""
    tool = [uv_binary(), "tool", "run", "--python", sys.executable, "--from", requirement]
    return [*tool, command, *args]


def make_venv(path: Path, *, with_pip: bool) -> Path:
    """Create a fresh virtual environment with the stdlib `venv`; return its interpreter.

    `with_pip` seeds pip from the interpreter's bundled wheel (ensurepip: offline, no index).
    """
    args = [sys.executable, "-m", "venv", str(path)]
    if not with_pip:
        args.append("--without-pip")
    run(args).succeeded()
    return path / "bin" / "python"


def uv_pip_install(
    python: Path, index: str, *requirements: str, env: dict[str, str] | None = None
) -> Outcome:
    """`uv pip install --no-cache` of `requirements` into the environment of `python`, from
    `index` alone (with `run`'s clean environment unless `env` is given)."""
    argv = [uv_binary(), "pip", "install", "--no-cache", "--python", str(python)]
    return run([*argv, "--index-url", index, *requirements], env=env)


def pip_install(python: Path, index: str, *requirements: str) -> Outcome:
    """`pip install` of `requirements` with the pip of `python`, from `index` alone: isolated
    (no configuration file, no environment variables), no cache, no prompts."""
    argv = [str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir"]
    argv += ["--disable-pip-version-check", "--no-input"]
    return run([*argv, "--index-url", index, *requirements])


def installed_version(python: Path, distribution: str) -> str | None:
    """The version of `distribution` installed for `python`, or None when it is absent."""
    code = (
        "import importlib.metadata as m, sys\n"
        "try:\n    print(m.version(sys.argv[1]))\n"
        "except m.PackageNotFoundError:\n    print('')\n"
    )
    outcome = run([python, "-c", code, distribution]).succeeded()
    return outcome.output.strip() or None


def project_page(simple_url: str, project: str, *, json: bool) -> dict[str, DistributionPackage]:
    """The files a simple index lists for `project`, by filename, parsed with pypi-simple.

    `simple_url` ends with a slash; `json` picks PEP 691 JSON, else PEP 503 HTML. Fails when
    the page is not 200 or lists a filename twice.
    """
    url = f"{simple_url}{project}/"
    response = httpx.get(url, headers={"Accept": ACCEPT_JSON_ONLY if json else ACCEPT_HTML_ONLY})
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text}"
    if json:
        page = ProjectPage.from_json_data(response.json(), base_url=url)
    else:
        page = ProjectPage.from_html(project, response.text, base_url=url)
    listed = {package.filename: package for package in page.packages}
    assert len(listed) == len(page.packages), f"a filename is listed twice on {url}"
    return listed


class _RequestTap:
    """Wraps the client side of one connection and records each HTTP/1.x request head.

    Bodies are skipped by `Content-Length` (the clients we observe do not send chunked
    requests), so bytes inside an upload are never mistaken for a request line.
    """

    def __init__(self, reader: asyncio.StreamReader, record: Callable[[str, str], None]) -> None:
        self._reader = reader
        self._record = record
        self._buffer = b""
        self._body_left = 0

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        self._feed(data)
        return data

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._body_left:
                skipped = min(self._body_left, len(self._buffer))
                self._body_left -= skipped
                self._buffer = self._buffer[skipped:]
                if self._body_left:
                    return
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1").split("\r\n")
            self._buffer = self._buffer[end + 4 :]
            method, target, _version = head[0].split(" ", 2)
            self._record(method, target)
            for line in head[1:]:
                key, _, value = line.partition(":")
                if key.strip().lower() == "content-length":
                    self._body_left = int(value.strip())


class RequestRecorder(TcpProxy):
    """A forwarder in front of a server that records `(method, path)` of every request.

    The server's access log is off by default; pointing a client at this proxy shows exactly
    the requests the server received. The server builds its links from the `Host` header, so
    the files a page links to are fetched through the proxy too.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._requests: list[tuple[str, str]] = []
        self._guard = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL of the proxy (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        """A copy of the requests seen so far, in arrival order per connection."""
        with self._guard:
            return list(self._requests)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Relies on TcpProxy._handle only calling `reader.read(n)` on the client side.
        await super()._handle(_RequestTap(reader, self._record), writer)  # type: ignore[arg-type]

    def _record(self, method: str, target: str) -> None:
        with self._guard:
            self._requests.append((method, target))

    def __enter__(self) -> RequestRecorder:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
