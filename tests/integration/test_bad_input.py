"""Bad input against hosted repositories: hostile filenames, versions, digests, archives, form
bodies, project names and URLs.

Each hostile request must get a 4xx whose problem+json `detail` says what is wrong, and leave
nothing behind: no project, no file, no blob, no spool file, nothing written outside the data
directory, and stored bytes unchanged where a file already existed. Size limits are tested on a
dedicated server with a 1 MiB upload limit; everything else uses the session server.
"""

from __future__ import annotations

import hashlib
import socket
import tarfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.checks import JSON_V1, assert_absent, blob_path, refused
from wheelyard.testing.dist_factory import (
    TarMember,
    escaped_name,
    make_sdist,
    make_tar_bomb,
    make_wheel,
    make_wheel_with_zeros,
    metadata_text,
    sdist_filename,
    wheel_filename,
)
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import (
    ADMIN_PASSWORD,
    RunningServer,
    unique_project,
)
from wheelyard.testing.uploads import (
    FILE_CONTENT_TYPE,
    FORM_CONTENT_TYPE,
    field_parts,
    form_body,
    form_end,
    form_part,
    part_head,
    twine_fields,
    upload_bytes,
)

MiB = 1024 * 1024
SMALL_LIMIT = 1 * MiB
SECRETS = (b"root:x:0:0", b"SQLite format 3", b"test-admin-password")


# ------------------------------------------------------------------------------------------
# Helpers


def upload(
    client: httpx.Client,
    server: RunningServer,
    filename: str | bytes,
    data: bytes,
    **overrides: str | None,
) -> httpx.Response:
    return upload_bytes(
        server.upload_url(), filename, data, overrides=overrides, auth=server.admin, client=client
    )


def upload_path(
    client: httpx.Client, server: RunningServer, path: Path, **overrides: str | None
) -> httpx.Response:
    return upload(client, server, path.name, path.read_bytes(), **overrides)


def spool_files(server: RunningServer) -> list[Path]:
    spool = server.process.data_dir / "tmp" / "uploads"
    return sorted(spool.glob("*")) if spool.exists() else []


def wait_for_no_spool_files(server: RunningServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while spool_files(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spool_files(server) == [], "an upload spool file was left behind"


def written_since(root: Path, since: float, token: str) -> list[Path]:
    """Files under `root` (the test session's temp area) named after `token`, written since."""
    return [p for p in root.rglob(f"*{token}*") if p.stat().st_mtime >= since]


def peak_rss_kib(server: RunningServer) -> int:
    assert server.process.proc is not None
    status = Path(f"/proc/{server.process.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def raw_request(server: RunningServer, head: str, body: bytes = b"") -> tuple[int, bytes, bytes]:
    """Send `head` (request line + headers, no final CRLF) verbatim; return status, raw header
    block and body (read until the server closes)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\nConnection: close\r\n\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    header_block, _, payload = received.partition(b"\r\n\r\n")
    status = int(header_block.split(b" ", 2)[1])
    return status, header_block, payload


def host(server: RunningServer) -> str:
    return urlsplit(server.url).netloc


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose upload limit is 1 MiB (WHEELYARD_MAX_UPLOAD_SIZE)."""
    env = {
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WHEELYARD_MAX_UPLOAD_SIZE": str(SMALL_LIMIT),
    }
    with ServerProcess(tmp_path_factory.mktemp("small-limit"), env) as process:
        yield RunningServer(process, process.url)


# ------------------------------------------------------------------------------------------
# Filenames, versions, digests and archive contents, checked as PyPI checks them
# (warehouse's forklift/legacy.py; docs/standards.md §1, §2, §7 and §8)


@pytest.mark.parametrize(
    "filename",
    [
        b"../../etc/{n}-1.0.tar.gz",
        b"a/{n}-1.0.tar.gz",
        b"x\\{n}-1.0.whl",
        b"{n}\x00-1.0.tar.gz",
        b"{n}-1.0.tar.gz\x00.png",
        b"{n}\x1b[31m-1.0.tar.gz",
        b"{n}-1.0\x7f.tar.gz",
        b"/{n}-1.0.tar.gz",
    ],
    ids=["dotdot-etc", "subdir", "backslash", "nul", "nul-suffix", "escape", "del", "absolute"],
)
def test_filename_with_path_or_control_characters_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, filename: bytes
) -> None:
    name = unique_project("evil")
    token = name.rsplit("-", 1)[1]
    data = make_sdist(tmp_path, name, "1.0").read_bytes()
    raw = filename.replace(b"{n}", escaped_name(name).encode())
    started = time.time()
    r = upload(client, wheelyard_server, raw, data, name=name, version="1.0")
    refused(r, [400], "name")
    assert_absent(client, wheelyard_server, name)
    assert not blob_path(wheelyard_server, data).exists()
    assert written_since(wheelyard_server.process.data_dir.parent, started, token) == []
    assert not Path(f"/etc/{escaped_name(name)}-1.0.tar.gz").exists()


def test_filename_not_matching_form_name_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    foo, bar = unique_project("foo"), unique_project("bar")
    path = make_sdist(tmp_path, bar, "1.0")
    text = refused(upload_path(client, wheelyard_server, path, name=foo), [400])
    assert canonicalize_name(foo) in text and canonicalize_name(bar) in text
    assert_absent(client, wheelyard_server, foo)
    assert_absent(client, wheelyard_server, bar)


@pytest.mark.parametrize(
    ("where", "version", "needle"),
    [
        ("form", "1.0-not!valid", "version"),
        ("form", " 1.0", "whitespace"),
        ("form", "1.0 ", "whitespace"),
        ("form", "1.0\n", "whitespace"),
        ("metadata", "1.0-not!valid", "version"),
        ("filename", "1.0.x", "version"),
    ],
    ids=["form-invalid", "form-leading", "form-trailing", "form-newline", "metadata", "filename"],
)
def test_invalid_or_padded_version_is_refused(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    tmp_path: Path,
    where: str,
    version: str,
    needle: str,
) -> None:
    name = unique_project()
    if where == "metadata":
        path = make_wheel(tmp_path, name, "1.0", metadata=metadata_text(name, version))
        r = upload_path(client, wheelyard_server, path)
    elif where == "filename":
        data = make_sdist(tmp_path, name, "1.0").read_bytes()
        r = upload(client, wheelyard_server, f"{escaped_name(name)}-{version}.tar.gz", data)
    else:
        r = upload_path(
            client, wheelyard_server, make_sdist(tmp_path, name, "1.0"), version=version
        )
    refused(r, [400], needle)
    assert_absent(client, wheelyard_server, name)


def test_digest_mismatch_stores_nothing(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    data = path.read_bytes()
    other = hashlib.sha256(data + b"x").hexdigest()
    refused(
        upload_path(client, wheelyard_server, path, sha256_digest=other), [400], "does not match"
    )
    assert_absent(client, wheelyard_server, name)
    assert not blob_path(wheelyard_server, data).exists()
    wait_for_no_spool_files(wheelyard_server)
    # The same upload with the right digest then goes through: nothing half-stored blocks it.
    assert upload_path(client, wheelyard_server, path).status_code == 200


def _not_a_zip(directory: Path, name: str) -> Path:
    path = directory / wheel_filename(name, "1.0")
    path.write_bytes(b"this is not a zip file at all" * 10)
    return path


def _not_a_gzip(directory: Path, name: str) -> Path:
    path = directory / sdist_filename(name, "1.0")
    path.write_bytes(b"\x1f\x8b" + bytes(100))
    return path


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda d, n: make_wheel(d, n, "1.0", omit=["WHEEL"]), "WHEEL"),
        (lambda d, n: make_wheel(d, n, "1.0", omit=["METADATA"]), "METADATA"),
        (lambda d, n: make_sdist(d, n, "1.0", omit_pkg_info=True), "PKG-INFO"),
        (_not_a_zip, "zip"),
        (_not_a_gzip, "tar"),
    ],
    ids=["no-WHEEL", "no-METADATA", "no-PKG-INFO", "whl-not-zip", "sdist-not-gzip"],
)
def test_invalid_distribution_file_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, build: Any, needle: str
) -> None:
    name = unique_project()
    path = build(tmp_path, name)
    refused(upload_path(client, wheelyard_server, path), [400], "Invalid distribution file", needle)
    assert_absent(client, wheelyard_server, name)
    assert not blob_path(wheelyard_server, path.read_bytes()).exists()


# ------------------------------------------------------------------------------------------
# Hostile archives: bombs (pypi/warehouse#13962), overlapping zip entries (CVE-2024-0450),
# exotic compression, tar members that escape (CVE-2007-4559, PEP 706); docs/standards.md §8


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_decompression_bomb_is_refused_with_bounded_memory(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, kind: str
) -> None:
    name = unique_project()
    if kind == "zip":
        path = make_wheel_with_zeros(tmp_path, name, "1.0", size=96 * MiB)
    else:
        top = f"{escaped_name(name)}-1.0"
        path = make_tar_bomb(tmp_path / sdist_filename(name, "1.0"), top=top, size=160 * MiB)
    assert path.stat().st_size < 2 * MiB
    peak_before = peak_rss_kib(wheelyard_server)
    r = upload_path(client, wheelyard_server, path)
    refused(r, [400], "Invalid distribution file")
    assert peak_rss_kib(wheelyard_server) - peak_before < 48 * 1024, "the bomb was inflated"
    assert_absent(client, wheelyard_server, name)


def test_overlapping_zip_entries_are_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    # Point a second central-directory entry at the first local header, as "quoted-overlap"
    # bombs do (CVE-2024-0450).
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        cd_offset = archive.start_dir
    second = data.index(b"PK\x01\x02", cd_offset + 4)
    data[second + 42 : second + 46] = (0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    refused(upload_path(client, wheelyard_server, path), [400], "overlapping")
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize("method", [zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2], ids=["lzma", "bzip2"])
def test_wheel_member_with_unsupported_compression_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, method: int
) -> None:
    name = unique_project()
    member = f"{escaped_name(name)}/__init__.py"
    path = make_wheel(tmp_path, name, "1.0", member_compression={member: method})
    refused(upload_path(client, wheelyard_server, path), [400], "compression method")
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize(
    "member",
    [
        TarMember("{top}/../evil-{tok}", "pwned"),
        TarMember("/tmp/evil-{tok}", "pwned"),
        TarMember("{top}/link-{tok}", type=tarfile.SYMTYPE, linkname="/tmp/evil-{tok}"),
        TarMember("{top}/up-{tok}", type=tarfile.SYMTYPE, linkname="../../evil-{tok}"),
        TarMember("{top}/hard-{tok}", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        TarMember("{top}/dev-{tok}", type=tarfile.BLKTYPE),
    ],
    ids=["dotdot", "absolute", "symlink-abs", "symlink-up", "hardlink-abs", "block-device"],
)
def test_hostile_tar_members_are_refused_consistently(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, member: TarMember
) -> None:
    name = unique_project()
    token = name.rsplit("-", 1)[1]
    top = f"{escaped_name(name)}-1.0"
    hostile = TarMember(
        member.name.format(top=top, tok=token),
        member.content,
        type=member.type,
        linkname=member.linkname.format(tok=token),
    )
    path = make_sdist(tmp_path, name, "1.0", extra_members=[hostile])
    started = time.time()
    first = refused(upload_path(client, wheelyard_server, path), [400], "Invalid distribution file")
    second = refused(upload_path(client, wheelyard_server, path), [400])
    assert first == second  # the same policy every time
    assert_absent(client, wheelyard_server, name)
    assert written_since(wheelyard_server.process.data_dir.parent, started, token) == []
    assert not Path(f"/tmp/evil-{token}").exists()


# ------------------------------------------------------------------------------------------
# Size limits and form floods (Starlette CVE-2024-47874, python-multipart CVE-2024-53981)


def _chunks(*pieces: bytes, filler: bytes = b"", filler_size: int = 0) -> Iterator[bytes]:
    """Yield `pieces[0]`, then `filler_size` bytes of `filler` in 64 KiB chunks, then the rest."""
    yield pieces[0]
    block = (filler * (65536 // max(len(filler), 1) + 1))[:65536] if filler else b""
    sent = 0
    while sent < filler_size:
        yield block
        sent += len(block)
    yield from pieces[1:]


def test_chunked_legacy_upload_over_the_limit_is_refused(
    client: httpx.Client, small_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    filename = wheel_filename(name, "1.0")
    fields = twine_fields(filename, b"")
    head = field_parts(fields) + part_head("content", filename.encode(), FILE_CONTENT_TYPE)
    tail = b"\r\n" + form_end()
    body = _chunks(head, tail, filler=b"\x00", filler_size=6 * SMALL_LIMIT)
    r = client.post(
        small_server.local + "/",
        content=body,  # a generator: sent chunked, without Content-Length
        headers={"Content-Type": FORM_CONTENT_TYPE},
        auth=small_server.admin,
    )
    refused(r, [413], "too large")
    wait_for_no_spool_files(small_server)
    assert_absent(client, small_server, name)


def test_chunked_put_over_the_limit_is_refused(
    client: httpx.Client, small_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    filename = wheel_filename(name, "1.0")
    url = f"{small_server.local}/{canonicalize_name(name)}/1.0/{filename}"
    body = _chunks(b"PK", b"", filler=b"\x00", filler_size=6 * SMALL_LIMIT)
    r = client.put(url, content=body, auth=small_server.admin)
    refused(r, [413], "too large")
    wait_for_no_spool_files(small_server)
    assert_absent(client, small_server, name)


def test_declared_length_over_the_limit_is_refused_before_reading(
    small_server: RunningServer,
) -> None:
    name = unique_project()
    filename = wheel_filename(name, "1.0")
    path = f"/repositories/default/local/{canonicalize_name(name)}/1.0/{filename}"
    auth = httpx.BasicAuth(*small_server.admin)._auth_header
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {host(small_server)}\r\nAuthorization: {auth}\r\n"
        f"Content-Length: {50 * SMALL_LIMIT}"
    )
    # Not one body byte is sent: the answer must come from the declared length alone.
    status, _, payload = raw_request(small_server, head)
    assert status == 413, payload
    assert b"too large" in payload.lower()


def test_an_upload_under_the_limit_still_works(
    client: httpx.Client, small_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    assert upload_path(client, small_server, path).status_code == 200
    wait_for_no_spool_files(small_server)


def _flood_body(kind: str, filename: str, data: bytes) -> Iterator[bytes]:
    fields = field_parts(twine_fields(filename, data))
    file_part = form_part("content", data, filename.encode(), FILE_CONTENT_TYPE)
    if kind == "empty-fields-same-name":
        yield fields
        yield form_part("comment", b"") * 100_000
        yield file_part + form_end()
    elif kind == "empty-fields-distinct-names":
        yield fields
        yield b"".join(form_part(f"f{i}", b"") for i in range(100_000))
        yield file_part + form_end()
    elif kind == "huge-field":
        yield fields + part_head("description")
        yield from _chunks(b"", filler=b"A", filler_size=64 * MiB)
        yield b"\r\n" + file_part + form_end()
    elif kind == "crlf-preamble":
        yield from _chunks(b"", filler=b"\r\n", filler_size=64 * MiB)
        yield fields + file_part + form_end()
    elif kind == "epilogue":
        yield fields + file_part + form_end()
        yield from _chunks(b"", filler=b"\r\n", filler_size=64 * MiB)
    elif kind == "huge-ignored-file-part":
        yield fields + part_head("gpg_signature", b"x.asc")
        yield from _chunks(b"", filler=b"A", filler_size=64 * MiB)
        yield b"\r\n" + file_part + form_end()


@pytest.mark.parametrize(
    "kind",
    [
        "empty-fields-same-name",
        "empty-fields-distinct-names",
        "huge-field",
        "crlf-preamble",
        "epilogue",
        "huge-ignored-file-part",
    ],
)
def test_form_floods_are_refused_without_stalling_the_server(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, kind: str
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")

    def send() -> httpx.Response:
        with httpx.Client(timeout=120) as sender:
            return sender.post(
                wheelyard_server.local + "/",
                content=_flood_body(kind, path.name, path.read_bytes()),
                headers={"Content-Type": FORM_CONTENT_TYPE},
                auth=wheelyard_server.admin,
            )

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(send)
        # The event loop keeps serving others while the flood is parsed.
        while not future.done():
            r = client.get(wheelyard_server.local_simple, timeout=10)
            assert r.status_code == 200
            time.sleep(0.05)
        response = future.result()
    refused(response, [400, 413])
    assert_absent(client, wheelyard_server, name)
    wait_for_no_spool_files(wheelyard_server)


# ------------------------------------------------------------------------------------------
# Metadata content and names: a description's markup is stored as data; a name with markup
# (stored XSS through a name: stevearc/pypicloud#280) or non-ASCII letters (pypi/warehouse#2151)
# is refused; spellings of one name are one project (PEP 503; docs/standards.md §1)


def test_hostile_description_is_stored_as_data(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    description = (
        "# Title\n\n<script>alert('x')</script>\n\n[click](javascript:alert(1))\n\n"
        '<img src=x onerror="alert(2)">\n\n.. raw:: html\n\n   <iframe src="https://evil"></iframe>\n'
    )
    metadata = metadata_text(
        name,
        "1.0",
        extra_headers=[("Description-Content-Type", "text/markdown")],
        description=description,
    )
    path = make_wheel(tmp_path, name, "1.0", metadata=metadata)
    r = upload_path(client, wheelyard_server, path, description=description)
    assert r.status_code == 200, r.text
    normalized = canonicalize_name(name)
    info = client.get(f"{wheelyard_server.local}/pypi/{normalized}/json").json()["info"]
    assert info["description"] == description
    assert info["description_content_type"] == "text/markdown"
    api = f"{wheelyard_server.url}/api/v1/repositories/default/local/projects/{normalized}"
    details = client.get(api)
    assert details.headers["content-type"].startswith("application/json")
    assert details.json()["versions"][0]["metadata"]["description"] == description
    page = client.get(f"{wheelyard_server.local_simple}{normalized}/")
    assert "<script" not in page.text and "javascript:" not in page.text


@pytest.mark.parametrize(
    "bad_name",
    ["<img src=x onerror=alert(1)>", "café", "r\u0435quests", "foo\nbar", "-leading", "trailing."],
    ids=["markup", "non-ascii", "cyrillic-confusable", "newline", "leading-dash", "trailing-dot"],
)
@pytest.mark.parametrize("where", ["form", "metadata"])
def test_invalid_project_names_are_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, bad_name: str, where: str
) -> None:
    name = unique_project()
    if where == "form":
        path = make_wheel(tmp_path, name, "1.0")
        r = upload_path(client, wheelyard_server, path, name=bad_name)
    else:
        header_safe = bad_name.replace("\n", "\n ")  # a folded header keeps the newline
        path = make_wheel(tmp_path, name, "1.0", metadata=metadata_text(header_safe, "1.0"))
        r = upload_path(client, wheelyard_server, path)
    refused(r, [400], "name")
    assert_absent(client, wheelyard_server, name)


def test_name_spellings_map_to_one_project(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    token = unique_project("x").rsplit("-", 1)[1]
    spellings = [f"Foo_Bar{token}", f"foo.bar{token}", f"FOO-bar{token}"]
    normalized = f"foo-bar{token}"
    for index, spelling in enumerate(spellings, start=1):
        version = f"{index}.0"
        directory = tmp_path / str(index)
        directory.mkdir()
        path = make_wheel(directory, spelling, version, metadata=metadata_text(spelling, version))
        assert path.name.startswith(f"foo_bar{token}-")
        r = upload_path(client, wheelyard_server, path, name=spelling)
        assert r.status_code == 200, r.text
    page = client.get(f"{wheelyard_server.local_simple}{normalized}/", headers={"Accept": JSON_V1})
    assert page.json()["name"] == normalized
    assert len(page.json()["files"]) == 3
    root = client.get(wheelyard_server.local_simple, headers={"Accept": JSON_V1}).json()
    ours = [p for p in root["projects"] if canonicalize_name(p["name"]) == normalized]
    assert len(ours) == 1
    for spelling in spellings:
        r = client.get(f"{wheelyard_server.local_simple}{spelling}/", follow_redirects=True)
        assert r.status_code == 200 and str(r.url).endswith(f"/simple/{normalized}/")


# ------------------------------------------------------------------------------------------
# Hostile URLs and truncated bodies: header injection (pypiserver/pypiserver#237), encoded
# traversal (Nexus CVE-2024-4956), a body that ends before its Content-Length


@pytest.mark.parametrize(
    "path",
    [
        "/repositories/default/local/simple/%0d%0aSet-Cookie:injected=1/",
        "/repositories/default/local/simple/foo%0d%0aSet-Cookie:injected=1",
        "/repositories/default/local/simple/foo%0D%0ALocation:%20http://evil/",
        "/repositories/default/local/pypi/foo%0d%0aSet-Cookie:injected=1/json",
        "/repositories/default/local/pypi/foo%0d%0aSet-Cookie:injected=1/1.0/json/",
        "/repositories/default/local/foo/1.0/foo-1.0.tar.gz%0d%0aSet-Cookie:injected=1",
        "/repositories/default/local%0d%0aSet-Cookie:injected=1/simple/",
        "/api/v1/repositories/default/local/projects/foo%0d%0aSet-Cookie:injected=1",
    ],
)
def test_crlf_in_the_path_injects_no_header(wheelyard_server: RunningServer, path: str) -> None:
    status, headers, _ = raw_request(
        wheelyard_server, f"GET {path} HTTP/1.1\r\nHost: {host(wheelyard_server)}"
    )
    # 401 for an unknown repository asked anonymously: it answers as a private one would
    # (issue 9, no existence oracle).
    assert status in (400, 401, 404), headers
    lines = [line.lower() for line in headers.split(b"\r\n")[1:]]
    assert not any(line.startswith((b"set-cookie", b"location")) for line in lines), headers
    assert b"injected" not in headers and b"evil" not in headers


@pytest.fixture(scope="module")
def existing_file(wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`<project>/1.0/<filename>` of a real file, to aim traversal attempts from."""
    name = unique_project()
    path = make_sdist(tmp_path_factory.mktemp("traversal"), name, "1.0")
    assert wheelyard_server.upload(path).status_code == 200
    return f"{canonicalize_name(name)}/1.0/{path.name}"


@pytest.mark.parametrize(
    "path",
    [
        "/%2F%2F..%2F..%2Fetc%2Fpasswd",
        "/repositories/default/local/%2F%2F..%2F..%2Fetc%2Fpasswd",
        "/repositories/default/local/../../../../etc/passwd",
        "/repositories/default/local/{dir}/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/repositories/default/local/{dir}/..%252f..%252f..%252fetc%252fpasswd",
        "/repositories/default/local/{dir}/..\\..\\..\\..\\etc\\passwd",
        "/repositories/default/local/{dir}/%2Fetc%2Fpasswd",
        "/repositories/default/local/{dir}/..%2F..%2F..%2Fwheelyard.db",
        "/repositories/default/local/{dir}/..%2F..%2F..%2Fadmin-password",
        "/repositories/default/local/{file}/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/repositories/default/local/{file}.metadata%2F..%2F..%2Fetc%2Fpasswd",
        "/repositories/default/local/simple/..%2F..%2F..%2F..%2Fetc%2Fpasswd/",
        "/repositories/default/local/pypi/..%2F..%2F..%2Fetc%2Fpasswd/json",
        "/repositories/..%2F..%2F..%2F..%2Fetc/passwd/simple/",
        "/api/v1/repositories/default/local/projects/..%2F..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_path_traversal_on_read_routes_is_404(
    wheelyard_server: RunningServer, existing_file: str, path: str
) -> None:
    directory = existing_file.rsplit("/", 1)[0]
    target = path.format(dir=directory, file=existing_file)
    status, _, body = raw_request(
        wheelyard_server, f"GET {target} HTTP/1.1\r\nHost: {host(wheelyard_server)}"
    )
    assert status == 404, (status, body[:300])
    for secret in SECRETS:
        assert secret not in body
    # The file itself is still served at its own URL (the 404s are not a broken route).
    own_url = f"/repositories/default/local/{existing_file}"
    status, _, body = raw_request(
        wheelyard_server, f"GET {own_url} HTTP/1.1\r\nHost: {host(wheelyard_server)}"
    )
    assert status == 200 and body[:2] == b"\x1f\x8b"


def _send_truncated(server: RunningServer, head: str, body: bytes, declared: int) -> bytes:
    """Send `head` with Content-Length `declared`, then fewer bytes (`body`), then hang up."""
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    try:
        sock.sendall(f"{head}\r\nContent-Length: {declared}\r\n\r\n".encode() + body)
        time.sleep(0.3)  # let the server read what was sent and wait for the rest
        sock.shutdown(socket.SHUT_WR)
        received = b""
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return received
    finally:
        sock.close()


@pytest.mark.parametrize("route", ["put", "legacy"])
def test_body_shorter_than_content_length_stores_nothing(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, route: str
) -> None:
    # The whole, valid file is sent: only the missing promised bytes make it an aborted upload.
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    data = path.read_bytes()
    normalized = canonicalize_name(name)
    auth = httpx.BasicAuth(*wheelyard_server.admin)._auth_header
    if route == "put":
        target = f"/repositories/default/local/{normalized}/1.0/{path.name}"
        head = f"PUT {target} HTTP/1.1\r\nHost: {host(wheelyard_server)}\r\nAuthorization: {auth}"
        body = data
    else:
        head = (
            f"POST /repositories/default/local/ HTTP/1.1\r\nHost: {host(wheelyard_server)}\r\n"
            f"Authorization: {auth}\r\nContent-Type: {FORM_CONTENT_TYPE}"
        )
        body = form_body(path.name, data)
    answer = _send_truncated(wheelyard_server, head, body, declared=len(body) + 1000)
    if answer:  # the server may still manage to answer before the connection is gone
        assert answer.split(b" ", 2)[1] in (b"400", b"408"), answer[:200]
    wait_for_no_spool_files(wheelyard_server)
    assert_absent(client, wheelyard_server, name)
    assert client.get(f"{wheelyard_server.local}/{normalized}/1.0/{path.name}").status_code == 404
    # Nothing half-stored blocks the real upload afterwards.
    assert upload_path(client, wheelyard_server, path).status_code == 200


def test_bad_input_left_the_server_healthy(
    client: httpx.Client, wheelyard_server: RunningServer
) -> None:
    # Runs last in this module: after every hostile request, no traceback and still ready.
    assert client.get(wheelyard_server.url + "/readyz").status_code == 200
    assert "Traceback" not in wheelyard_server.process.log()
