"""A local upstream index for proxy tests: a real HTTP server on 127.0.0.1 that can misbehave.

`LocalUpstream` serves a PEP 503 (HTML) and PEP 691 (JSON) simple tree built from wheels and
sdists that `dist_factory` makes in a test's directory:

- `/simple/` (root) and `/simple/<project>/`, negotiated by `Accept` (JSON preferred when the
  client names it; HTML otherwise), with sha256 fragments/hashes, `data-requires-python`,
  `data-yanked` (with reason), `data-core-metadata`, and in JSON `size` and `upload-time`;
  a strong `ETag` per body and `304` on a matching `If-None-Match`; `X-PyPI-Last-Serial`.
- `/files/<xx>/<filename>` (the bytes) and `/files/<xx>/<filename>.metadata` (PEP 658).

Faults the tests switch on and off while it runs: `slow` (delay before answering), `drip`
(a slow body), `fail` (an error status), `truncate` (a correct Content-Length, then the
connection is dropped after N bytes), `corrupt` / `serve_bytes` (wrong bytes), `redirect`,
`stop` / `start` (refused connections, same port afterwards), `require_auth`, `serve_page` (a
page body of your own). Projects and versions can be added while it runs. Every request is
counted per path on arrival (`hits`) and per status when answered (`statuses`), so a test can
prove that the proxy did (not) ask.

The server is uvicorn in a thread with its own event loop, so it serves a `wheelyard serve`
subprocess and synchronous and asynchronous tests alike.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_sdist, make_wheel, metadata_text
from wheelyard.testing.tcp_proxy import free_port

JSON_V1 = "application/vnd.pypi.simple.v1+json"
#: Seconds `page_hits` waits at most for the answers of requests that arrived to be counted.
SETTLE = 1.0

Scope = dict[str, Any]


@dataclass
class UpstreamFile:
    """One distribution file the upstream lists (its real bytes and PEP 658 metadata)."""

    filename: str
    data: bytes
    requires_python: str | None = None
    yanked: bool | str = False
    metadata: bytes | None = None
    upload_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Listed without a sha256 (the proxy then streams it through uncached).
    hashless: bool = False
    #: Listed without a size (as upstream HTML pages are).
    sizeless: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def metadata_sha256(self) -> str | None:
        return hashlib.sha256(self.metadata).hexdigest() if self.metadata is not None else None

    @property
    def path(self) -> str:
        """Where the upstream serves it: `/files/<xx>/<filename>` (percent-encoded)."""
        return f"/files/{self.sha256[:2]}/{quote(self.filename, safe='')}"


@dataclass
class UpstreamProject:
    """A project on the upstream, its files in upload order, and its serial."""

    name: str
    files: list[UpstreamFile] = field(default_factory=list)
    serial: int = 1
    #: PEP 792 status (and reason) served on its pages, when set.
    status: str | None = None
    status_reason: str | None = None

    @property
    def normalized(self) -> str:
        return canonicalize_name(self.name)

    def file(self, filename: str) -> UpstreamFile:
        """The file called `filename`."""
        return next(f for f in self.files if f.filename == filename)


@dataclass
class Fault:
    """What to do to requests whose path starts with `prefix` (`count` times, or always)."""

    prefix: str
    kind: str  # slow | fail | truncate | body | redirect
    value: Any = None
    count: int | None = None


class LocalUpstream:
    """A simple-API upstream on 127.0.0.1 (see the module docstring). Use as a context manager
    or call `start()` / `close()`."""

    def __init__(
        self,
        directory: Path,
        *,
        formats: tuple[str, ...] = ("json", "html"),
        tls: Any = None,
    ) -> None:
        """`tls`: a `trustme.CA` to serve HTTPS with a certificate it issues for 127.0.0.1
        (`ca_pem` is then the CA's certificate, for the trusting side)."""
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        #: Which page formats are offered: JSON-less upstreams answer HTML to everyone.
        self.formats = formats
        self.projects: dict[str, UpstreamProject] = {}
        self.hits: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.auth: tuple[str, str] | None = None
        self.auth_prefix = "/"
        #: Whether `/pypi/<project>/json` (PyPI's JSON API) is answered; 404 when False.
        self.json_api = True
        self._raw_pages: dict[str, tuple[bytes, str]] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def ca_pem(self) -> str:
        """The PEM certificate of the CA behind `tls`."""
        return str(self.tls.cert_pem.bytes().decode())

    @property
    def simple_url(self) -> str:
        """`http://127.0.0.1:<port>/simple/`."""
        return f"{self.url}/simple/"

    def start(self) -> LocalUpstream:
        """Listen (again, on the same port) and return once connections are accepted."""
        import uvicorn

        if self._thread is not None:
            return self
        ssl: dict[str, str] = {}
        if self.tls is not None:
            cert = self.tls.issue_cert("127.0.0.1", "localhost")
            chain, key = self.directory / "server-chain.pem", self.directory / "server-key.pem"
            chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
            key.write_bytes(cert.private_key_pem.bytes())
            ssl = {"ssl_certfile": str(chain), "ssl_keyfile": str(key)}
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="h11",
            lifespan="off",
            interface="asgi3",
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
            **ssl,  # type: ignore[arg-type]
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"upstream-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local upstream could not listen on {self.port}")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()` (an upstream outage)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(10)
        self._server, self._thread = None, None

    close = stop

    def __enter__(self) -> LocalUpstream:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- content ------------------------------------------------------------------------------

    def add_project(
        self,
        name: str,
        versions: tuple[str, ...] = ("1.0",),
        *,
        requires_dist: tuple[str, ...] = (),
        requires_python: str | None = None,
        yanked: dict[str, bool | str] | None = None,
        sdist: bool = False,
        size_bytes: int = 0,
        hashless: bool = False,
        uploaded: dict[str, datetime] | None = None,
    ) -> UpstreamProject:
        """Add (or extend) a project with one pure-Python wheel per version (and an sdist
        when `sdist`); `requires_dist` goes into each wheel's METADATA; `yanked` maps a
        version to True or a reason; `size_bytes` pads each wheel with incompressible data;
        `uploaded` maps a version to its files' PEP 700 upload time (else now)."""
        project = self.projects.get(canonicalize_name(name))
        if project is None:
            project = self.projects[canonicalize_name(name)] = UpstreamProject(name)
        for version in versions:
            metadata = metadata_text(
                name, version, requires_python=requires_python, requires_dist=requires_dist
            )
            extra = {"payload.bin": _noise(size_bytes, f"{name}-{version}")} if size_bytes else None
            path = make_wheel(
                self.directory,
                name,
                version,
                metadata=metadata,
                extra_members=extra,
                compression=zipfile.ZIP_STORED,
            )
            yank = (yanked or {}).get(version, False)
            when = (uploaded or {}).get(version) or datetime.now(UTC)
            self._add(
                project,
                UpstreamFile(
                    path.name,
                    path.read_bytes(),
                    requires_python=requires_python,
                    yanked=yank,
                    metadata=metadata.encode(),
                    hashless=hashless,
                    upload_time=when,
                ),
            )
            if sdist:
                spath = make_sdist(self.directory, name, version, requires_python=requires_python)
                self._add(
                    project,
                    UpstreamFile(
                        spath.name,
                        spath.read_bytes(),
                        requires_python=requires_python,
                        yanked=yank,
                        hashless=hashless,
                        upload_time=when,
                    ),
                )
        return project

    def add_file(self, name: str, file: UpstreamFile) -> UpstreamFile:
        """List `file` under project `name` (created when new)."""
        project = self.projects.setdefault(canonicalize_name(name), UpstreamProject(name))
        self._add(project, file)
        return file

    def _add(self, project: UpstreamProject, file: UpstreamFile) -> None:
        with self._lock:
            project.files = [f for f in project.files if f.filename != file.filename]
            project.files.append(file)
            project.serial += 1

    def project(self, name: str) -> UpstreamProject:
        """The project called `name` (any spelling)."""
        return self.projects[canonicalize_name(name)]

    def serve_page(self, name: str, body: bytes, content_type: str) -> None:
        """Answer `/simple/<name>/` with exactly `body` (hostile markup, odd JSON...)."""
        with self._lock:
            self._raw_pages[canonicalize_name(name)] = (body, content_type)

    def serve_large_page(self, name: str, files: int) -> list[dict[str, Any]]:
        """Answer `/simple/<name>/` (JSON) with a page of `files` wheels shaped like PyPI's
        biggest (long manylinux filenames, hashes, sizes, upload times, core-metadata); the
        files themselves are not served. Returns the listed entries."""
        module = canonicalize_name(name).replace("-", "_")
        entries = []
        for i in range(files):
            version = f"{i // 40}.{i % 40}"
            filename = (
                f"{module}-{version}-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
            )
            sha = hashlib.sha256(filename.encode()).hexdigest()
            entries.append(
                {
                    "filename": filename,
                    "url": f"{self.url}/files/{sha[:2]}/{filename}",
                    "hashes": {"sha256": sha},
                    "requires-python": ">=3.8",
                    "yanked": False,
                    "size": 1000 + i,
                    "upload-time": "2024-01-01T00:00:00.000000Z",
                    "core-metadata": {"sha256": sha},
                }
            )
        data = {
            "meta": {"api-version": "1.1"},
            "name": canonicalize_name(name),
            "versions": sorted({f"{i // 40}.{i % 40}" for i in range(files)}),
            "files": entries,
        }
        self.serve_page(name, json.dumps(data).encode(), JSON_V1)
        return entries

    def raw_page(self, name: str) -> bytes:
        """The body `serve_page` set for `name`."""
        with self._lock:
            return self._raw_pages[canonicalize_name(name)][0]

    def remove_project(self, name: str) -> None:
        """Forget a project: its page answers 404 from now on."""
        with self._lock:
            self.projects.pop(canonicalize_name(name), None)

    # -- counters -----------------------------------------------------------------------------

    def page_hits(self, name: str, status: int | None = None) -> int:
        """Requests for `/simple/<name>/` (with `status` only, when given: answers are counted
        once sent whole, which can be just after the proxy has them, so this waits up to
        `SETTLE` seconds for every request of the page that arrived to be answered)."""
        path = f"/simple/{canonicalize_name(name)}/"
        if status is None:
            return self.hits[path]
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            with self._lock:
                answered = sum(n for (p, _s), n in self.statuses.items() if p == path)
                if answered >= self.hits[path]:
                    break
            time.sleep(0.005)
        return self.statuses[(path, status)]

    def file_hits(self, filename: str, *, metadata: bool = False) -> int:
        """Requests for a file's bytes (or its `.metadata`), whatever the answer."""
        suffix = quote(filename, safe="") + (".metadata" if metadata else "")
        return sum(n for path, n in self.hits.items() if path.endswith("/" + suffix))

    def reset_counters(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.hits.clear()
            self.statuses.clear()
            self.requests.clear()

    # -- faults -------------------------------------------------------------------------------

    def slow(self, seconds: float, prefix: str = "/", *, count: int | None = None) -> None:
        """Wait `seconds` before answering requests under `prefix`."""
        self._fault(Fault(prefix, "slow", seconds, count))

    def fail(self, status: int = 500, prefix: str = "/", *, count: int | None = None) -> None:
        """Answer requests under `prefix` with `status` (and a short text body)."""
        self._fault(Fault(prefix, "fail", status, count))

    def truncate(self, file: UpstreamFile, at: int, *, count: int | None = None) -> None:
        """Send the full Content-Length for `file`, then drop the connection after `at` bytes."""
        self._fault(Fault(file.path, "truncate", at, count))

    def corrupt(self, file: UpstreamFile, *, count: int | None = None) -> None:
        """Serve `file` with the same length but different bytes (a hash mismatch)."""
        data = bytes(b ^ 0x55 for b in file.data[:64]) + file.data[64:]
        self.serve_bytes(file, data, count=count)

    def serve_bytes(self, file: UpstreamFile, data: bytes, *, count: int | None = None) -> None:
        """Serve `data` instead of `file`'s bytes."""
        self._fault(Fault(file.path, "body", data, count))

    def drip(self, file: UpstreamFile, delay: float, *, count: int | None = None) -> None:
        """Send `file` in 64 KiB pieces with `delay` seconds between them (a slow transfer)."""
        self._fault(Fault(file.path, "drip", delay, count))

    def redirect(self, prefix: str, location: str, *, count: int | None = None) -> None:
        """Answer requests under `prefix` with a 302 to `location`."""
        self._fault(Fault(prefix, "redirect", location, count))

    def require_auth(self, username: str, password: str, prefix: str = "/") -> None:
        """Answer 401 under `prefix` unless Basic credentials `username:password` are sent."""
        self.auth = (username, password)
        self.auth_prefix = prefix

    def heal(self) -> None:
        """Remove every fault and the auth requirement."""
        with self._lock:
            self._faults.clear()
            self.auth = None

    def _fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _faults_for(self, path: str) -> list[Fault]:
        with self._lock:
            hits = []
            for fault in self._faults:
                if path.startswith(fault.prefix) and fault.count != 0:
                    if fault.count is not None:
                        fault.count -= 1
                    hits.append(fault)
            return hits

    # -- HTTP ---------------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        raw_path = scope.get("raw_path", path.encode()).decode("latin-1").split("?")[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:  # counted on arrival, so a request still waiting on a fault counts
            self.hits[raw_path] += 1
            self.requests.append((scope["method"], raw_path, headers))
        status = await self._respond(scope, raw_path, headers, send)
        with self._lock:
            self.statuses[(raw_path, status)] += 1

    async def _respond(self, scope: Scope, path: str, headers: dict[str, str], send: Any) -> int:
        faults = self._faults_for(path)
        for fault in faults:
            if fault.kind == "slow":
                await asyncio.sleep(fault.value)
        if (
            self.auth is not None
            and path.startswith(self.auth_prefix)
            and not _authorized(headers, self.auth)
        ):
            return await _plain(send, 401, b"authentication required")
        for fault in faults:
            if fault.kind == "fail":
                return await _plain(send, fault.value, b"upstream failure")
            if fault.kind == "redirect":
                return await _plain(send, 302, b"", [("location", fault.value)])
        head = scope["method"] == "HEAD"
        if path.startswith("/simple/"):
            return await self._page(path, headers, send, head)
        if path.startswith("/pypi/") and self.json_api:
            return await self._json_api(path, send, head)
        if path.startswith("/files/"):
            return await self._file(path, faults, send, head)
        return await _plain(send, 404, b"not found")

    async def _page(self, path: str, headers: dict[str, str], send: Any, head: bool) -> int:
        segments = [s for s in path.split("/") if s]
        json_wanted = "json" in self.formats and JSON_V1 in headers.get("accept", "")
        if "html" not in self.formats:
            json_wanted = True
        if len(segments) == 1:
            body, ctype = self._root(json_wanted)
            extra: list[tuple[str, str]] = []
        else:
            with self._lock:
                project = self.projects.get(unquote(segments[1]))
                raw = self._raw_pages.get(unquote(segments[1]))
            if raw is not None:
                body, ctype = raw
                extra = []
            elif project is None or len(segments) != 2 or not path.endswith("/"):
                return await _plain(send, 404, b"no such project")
            else:
                body, ctype = (_project_json if json_wanted else _project_html)(project, self.url)
                extra = [("x-pypi-last-serial", str(project.serial))]
        etag = '"' + hashlib.sha256(ctype.encode() + body).hexdigest()[:32] + '"'
        extra += [("etag", etag), ("vary", "Accept")]
        if headers.get("if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304, "headers": _h(extra)})
            await send({"type": "http.response.body", "body": b""})
            return 304
        return await _plain(send, 200, body, [("content-type", ctype), *extra], head=head)

    async def _json_api(self, path: str, send: Any, head: bool) -> int:
        """PyPI's JSON API: `/pypi/<project>/json` and `/pypi/<project>/<version>/json`."""
        segments = [unquote(s) for s in path.split("/") if s]
        if len(segments) not in (3, 4) or segments[-1] != "json":
            return await _plain(send, 404, b"not found")
        with self._lock:
            project = self.projects.get(canonicalize_name(segments[1]))
        if project is None:
            return await _plain(send, 404, b"no such project")
        by_version: dict[str, list[dict[str, Any]]] = {}
        for f in project.files:
            by_version.setdefault(_version_of(f.filename), []).append(_json_api_file(f, self.url))
        from packaging.version import Version

        latest = max(by_version, key=Version)
        version = segments[2] if len(segments) == 4 else latest
        if version not in by_version:
            return await _plain(send, 404, b"no such release")
        data: dict[str, Any] = {
            "info": {
                "name": project.name,
                "version": version,
                "summary": f"{project.name} from the upstream's JSON API",
                "classifiers": ["Programming Language :: Python :: 3"],
                "platform": None,
            },
            "last_serial": project.serial,
            "urls": by_version[version],
            "vulnerabilities": [],
        }
        if len(segments) == 3:
            data["releases"] = by_version
        return await _plain(
            send, 200, json.dumps(data).encode(), [("content-type", "application/json")], head=head
        )

    def _root(self, json_wanted: bool) -> tuple[bytes, str]:
        with self._lock:
            names = sorted(p.normalized for p in self.projects.values())
        if json_wanted:
            data = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            return json.dumps(data).encode(), JSON_V1
        links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
        return f"<!DOCTYPE html><html><body>{links}</body></html>".encode(), "text/html"

    async def _file(self, path: str, faults: list[Fault], send: Any, head: bool) -> int:
        name = unquote(path.rsplit("/", 1)[-1])
        metadata = name.endswith(".metadata")
        filename = name.removesuffix(".metadata")
        found = self._find_file(filename)
        if found is None or (metadata and found.metadata is None):
            return await _plain(send, 404, b"no such file")
        data = found.metadata if metadata and found.metadata is not None else found.data
        truncate_at: int | None = None
        pause = 0.0
        for fault in faults:
            if fault.kind == "body":
                data = fault.value
            elif fault.kind == "truncate":
                truncate_at = fault.value
            elif fault.kind == "drip":
                pause = fault.value
        hdrs = [("content-type", "application/octet-stream"), ("content-length", str(len(data)))]
        await send({"type": "http.response.start", "status": 200, "headers": _h(hdrs)})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return 200
        if truncate_at is not None:
            await send(
                {"type": "http.response.body", "body": data[:truncate_at], "more_body": True}
            )
            # Returning without finishing the body makes uvicorn drop the connection: the
            # client sees fewer bytes than the Content-Length promised.
            return 200
        step = 64 * 1024
        for start in range(0, len(data), step):
            if pause and start:
                await asyncio.sleep(pause)
            more = start + step < len(data)
            await send(
                {
                    "type": "http.response.body",
                    "body": data[start : start + step],
                    "more_body": more,
                }
            )
        if not data:
            await send({"type": "http.response.body", "body": b""})
        return 200

    def _find_file(self, filename: str) -> UpstreamFile | None:
        with self._lock:
            for project in self.projects.values():
                for f in project.files:
                    if f.filename == filename:
                        return f
        return None


def _noise(size: int, seed: str) -> bytes:
    """`size` bytes that do not compress (so wheel sizes are what the test asked for)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _authorized(headers: dict[str, str], auth: tuple[str, str]) -> bool:
    expected = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return headers.get("authorization") == expected


def _h(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def _plain(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
) -> int:
    hdrs = [("content-length", str(len(body))), *(headers or [])]
    if not any(k == "content-type" for k, _ in hdrs):
        hdrs.append(("content-type", "text/plain"))
    await send({"type": "http.response.start", "status": status, "headers": _h(hdrs)})
    await send({"type": "http.response.body", "body": b"" if head else body})
    return status


def _yank_json(value: bool | str) -> bool | str:
    return value if value else False


def _project_json(project: UpstreamProject, base: str) -> tuple[bytes, str]:
    files = []
    for f in project.files:
        entry: dict[str, Any] = {
            "filename": f.filename,
            "url": base + f.path,
            "hashes": {} if f.hashless else {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "yanked": _yank_json(f.yanked),
            "upload-time": f.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if not f.sizeless:
            entry["size"] = len(f.data)
        if f.metadata is not None:
            entry["core-metadata"] = {"sha256": f.metadata_sha256}
            entry["data-dist-info-metadata"] = {"sha256": f.metadata_sha256}
        files.append(entry)
    data: dict[str, Any] = {
        "meta": {"api-version": "1.4" if project.status else "1.1", "_last-serial": project.serial},
        "name": project.normalized,
        "versions": sorted({_version_of(f.filename) for f in project.files}),
        "files": files,
    }
    if project.status:
        data["project-status"] = {"status": project.status}
        if project.status_reason:
            data["project-status"]["reason"] = project.status_reason
    return json.dumps(data).encode(), JSON_V1


def _json_api_file(f: UpstreamFile, base: str) -> dict[str, Any]:
    wheel = f.filename.endswith(".whl")
    return {
        "filename": f.filename,
        "url": base + f.path,
        "digests": {"sha256": f.sha256, "md5": hashlib.md5(f.data).hexdigest()},  # noqa: S324
        "size": len(f.data),
        "packagetype": "bdist_wheel" if wheel else "sdist",
        "python_version": f.filename.split("-")[-3] if wheel else "source",
        "requires_python": f.requires_python,
        "upload_time_iso_8601": f.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "yanked": bool(f.yanked),
        "yanked_reason": f.yanked if isinstance(f.yanked, str) else None,
    }


def _project_html(project: UpstreamProject, base: str) -> tuple[bytes, str]:
    anchors = []
    for f in project.files:
        # Relative hrefs, as many simple indexes emit: the proxy must resolve them.
        href = "../.." + f.path + ("" if f.hashless else f"#sha256={f.sha256}")
        attrs = f'href="{escape(href)}"'
        if f.requires_python:
            attrs += f' data-requires-python="{escape(f.requires_python)}"'
        if f.yanked:
            reason = f.yanked if isinstance(f.yanked, str) else ""
            attrs += f' data-yanked="{escape(reason)}"'
        if f.metadata is not None:
            attrs += f' data-core-metadata="sha256={f.metadata_sha256}"'
        anchors.append(f"<a {attrs}>{escape(f.filename)}</a><br/>\n")
    status = ""
    if project.status:
        status = f'<meta name="pypi:project-status" content="{escape(project.status)}">'
        if project.status_reason:
            reason = escape(project.status_reason)
            status += f'<meta name="pypi:project-status-reason" content="{reason}">'
    version = "1.4" if project.status else "1.0"
    body = (
        f'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="{version}">'
        + status
        + f"<title>Links for {escape(project.name)}</title></head><body>\n"
        + "".join(anchors)
        + "</body></html>\n"
    )
    return body.encode(), "text/html; charset=utf-8"


def _version_of(filename: str) -> str:
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[1])
    return str(parse_sdist_filename(filename)[1])


@pytest.fixture
def local_upstream(tmp_path: Path) -> Iterator[LocalUpstream]:
    """A fresh `LocalUpstream` for one test (its files under the test's tmp_path)."""
    with LocalUpstream(tmp_path / "upstream") as upstream:
        yield upstream
