"""Conformance of the hosted read side with the simple repository API (PEP 503, 691, 700, 658/714,
592, 629), the PyPI JSON API and plain HTTP downloads.

Everything goes over HTTP to a real `wheelyard serve` process (the session `wheelyard_server`),
against the hosted repository `default/local`. Each section names the standard it checks and
the section of docs/standards.md that records our reading of it; what real installers and
publishers make of these pages (pip and uv installs, yanked pins, `uv publish`,
`--skip-existing`, `--check-url`) is tested in tests/e2e/.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from pypi_simple import ProjectPage

from wheelyard.testing.dist_factory import make_sdist, make_wheel, metadata_text
from wheelyard.testing.server_fixtures import RunningServer, unique_project

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
POETRY_ACCEPT = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


# ------------------------------------------------------------------------------------------
# Helpers


@dataclass
class Anchor:
    """One `<a>` of a simple page: attributes as pip's html.parser sees them, and its text."""

    attrs: dict[str, str | None]
    text: str

    @property
    def href(self) -> str:
        return self.attrs["href"] or ""


class _PageParser(HTMLParser):
    """The same stdlib parser pip's HTMLLinkParser builds on: entities in values decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[Anchor] = []
        self.metas: list[dict[str, str | None]] = []
        self._open: tuple[dict[str, str | None], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = (dict(attrs), [])
        elif tag == "meta":
            self.metas.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append(Anchor(self._open[0], "".join(self._open[1])))
            self._open = None


def parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def anchors_by_filename(html: str) -> dict[str, Anchor]:
    return {a.text: a for a in parse_page(html).anchors}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_metadata_bytes(wheel: bytes) -> bytes:
    with zipfile.ZipFile(BytesIO(wheel)) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(member)


def version_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[1])
    return str(parse_sdist_filename(filename)[1])


def keys_anywhere(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from keys_anywhere(value)
    elif isinstance(data, list):
        for item in data:
            yield from keys_anywhere(item)


def raw_get(server: RunningServer, path: str, headers: dict[str, str] | None = None) -> tuple:
    """GET with exactly these headers (http.client adds only Host and Accept-Encoding)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


@dataclass
class Project:
    """A project published for the tests of this module, and what was uploaded."""

    name: str
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def normalized(self) -> str:
        return canonicalize_name(self.name)


def publish(server: RunningServer, paths: list[Path]) -> None:
    for path in paths:
        response = server.upload(path)
        assert response.status_code == 200, response.text


def yank_api(server: RunningServer, project: str, version: str) -> str:
    return f"{server.url}/api/v1/repositories/default/local/projects/{project}/versions/{version}"


def simple_url(server: RunningServer, project: str) -> str:
    return f"{server.local_simple}{project}/"


def get_json_page(client: httpx.Client, server: RunningServer, project: str) -> dict[str, Any]:
    r = client.get(simple_url(server, project), headers={"Accept": JSON_V1})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON_V1
    return r.json()


def get_html_page(client: httpx.Client, server: RunningServer, project: str) -> str:
    r = client.get(simple_url(server, project), headers={"Accept": "text/html"})
    assert r.status_code == 200, r.text
    return r.text


# ------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One keep-alive client for the module (a client per request costs more than the request)."""
    with httpx.Client(timeout=30) as c:
        yield c


WHEEL_1 = "wheel-1.0"
SDIST_1 = "sdist-1.0"
WHEEL_2 = "wheel-2.0"


@pytest.fixture(scope="module")
def project(wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """`Foo.Bar-<hex>`: a 1.0 wheel (Requires-Python >=3.8,<4, CRLF METADATA with a non-ASCII
    body, to prove the .metadata bytes are untouched), a 1.0 sdist, and a 2.0 wheel without
    Requires-Python. A neighbour `<name>-extra` exists so pages must not mix projects."""
    directory = tmp_path_factory.mktemp("conformance-index")
    name = unique_project("Foo.Bar")
    crlf_metadata = metadata_text(
        name,
        "1.0",
        requires_python=">=3.8,<4",
        newline="\r\n",
        description="Ünïcode description, kept byte for byte.\r\n",
    ).encode("utf-8")
    paths = [
        make_wheel(directory, name, "1.0", metadata=crlf_metadata),
        make_sdist(directory, name, "1.0"),
        make_wheel(directory, name, "2.0"),
    ]
    publish(wheelyard_server, paths)
    neighbour_dir = directory / "neighbour"
    neighbour_dir.mkdir()
    publish(wheelyard_server, [make_wheel(neighbour_dir, name + "-extra", "1.0")])
    return Project(name, {p.name: p.read_bytes() for p in paths})


def filename_of(project: Project, which: str) -> str:
    kind, version = which.split("-")
    escaped = project.normalized.replace("-", "_")
    if kind == "sdist":
        return f"{escaped}-{version}.tar.gz"
    return f"{escaped}-{version}-py3-none-any.whl"


def fresh_project(server: RunningServer, tmp_path: Path, *versions: str) -> str:
    """A new project with one wheel per version; returns its normalized name."""
    name = unique_project("yank")
    publish(server, [make_wheel(tmp_path, name, v) for v in versions])
    return canonicalize_name(name)


# ------------------------------------------------------------------------------------------
# Names and routing: normalized project URLs with a trailing slash (PEP 503; docs/standards.md
# §1 and §5)


def test_project_page_lists_only_its_own_files(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    r = client.get(simple_url(wheelyard_server, project.normalized))
    assert r.status_code == 200
    anchors = parse_page(r.text).anchors
    assert sorted(a.text for a in anchors) == sorted(project.files)
    assert len(anchors) == len(project.files)
    files = get_json_page(client, wheelyard_server, project.normalized)["files"]
    assert sorted(f["filename"] for f in files) == sorted(project.files)


@pytest.mark.parametrize("spelling", ["underscores", "dots", "mixed-case"])
def test_non_normalized_name_redirects_keeping_repository_prefix(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project, spelling: str
) -> None:
    requested = {
        "underscores": project.name.replace(".", "_").replace("-", "_"),
        "dots": project.normalized.replace("-", "."),
        "mixed-case": project.name.upper(),
    }[spelling]
    assert requested != project.normalized
    url = simple_url(wheelyard_server, requested)
    r = client.get(url)
    assert r.status_code == 301
    target = urljoin(url, r.headers["location"])
    assert target == simple_url(wheelyard_server, project.normalized)
    assert urlsplit(target).path.startswith("/repositories/default/local/simple/")
    assert client.get(target).status_code == 200


@pytest.mark.parametrize("normalized", [True, False])
def test_url_without_trailing_slash_redirects(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project, normalized: bool
) -> None:
    requested = project.normalized if normalized else project.name.replace(".", "_")
    url = wheelyard_server.local_simple + requested
    r = client.get(url)
    assert r.status_code == 301
    assert urljoin(url, r.headers["location"]) == simple_url(wheelyard_server, project.normalized)
    bare_root = wheelyard_server.local + "/simple"
    r = client.get(bare_root)
    assert r.status_code == 301
    assert urljoin(bare_root, r.headers["location"]) == wheelyard_server.local_simple


def test_root_page_has_one_anchor_per_project(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    root = wheelyard_server.local_simple
    r = client.get(root)
    assert r.status_code == 200
    anchors = parse_page(r.text).anchors
    targets = [urljoin(root, a.href) for a in anchors]
    assert len(targets) == len(set(targets)), "a project is listed twice"
    for anchor, target in zip(anchors, targets, strict=True):
        assert target == simple_url(wheelyard_server, canonicalize_name(anchor.text))
    ours = [a for a in anchors if canonicalize_name(a.text) == project.normalized]
    assert len(ours) == 1
    assert urljoin(root, ours[0].href) == simple_url(wheelyard_server, project.normalized)
    listed = client.get(root, headers={"Accept": JSON_V1}).json()["projects"]
    assert [p for p in listed if canonicalize_name(p["name"]) == project.normalized]


@pytest.mark.parametrize("accept", ["text/html", JSON_V1, HTML_V1])
def test_unknown_project_is_404(
    client: httpx.Client, wheelyard_server: RunningServer, accept: str
) -> None:
    missing = unique_project("does-not-exist")
    r = client.get(simple_url(wheelyard_server, missing), headers={"Accept": accept})
    assert r.status_code == 404
    assert missing in r.json()["detail"]


@pytest.mark.parametrize("accept", ["text/html", JSON_V1])
def test_head_matches_get_without_body(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project, accept: str
) -> None:
    url = simple_url(wheelyard_server, project.normalized)
    got = client.get(url, headers={"Accept": accept})
    head = client.head(url, headers={"Accept": accept})
    assert head.status_code == 200
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""
    assert head.headers.get("etag") == got.headers.get("etag")


# ------------------------------------------------------------------------------------------
# Negotiation: PEP 691 "Version + Format Selection" and our choices in docs/standards.md §5


def test_json_accept_gives_pep691_json(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    r = client.get(simple_url(wheelyard_server, project.normalized), headers={"Accept": JSON_V1})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON_V1
    assert re.fullmatch(r"1\.\d+", r.json()["meta"]["api-version"])


@pytest.mark.parametrize(
    "accept", [PIP_ACCEPT, UV_ACCEPT, POETRY_ACCEPT], ids=["pip", "uv", "poetry"]
)
def test_installer_accept_headers_get_json(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project, accept: str
) -> None:
    r = client.get(simple_url(wheelyard_server, project.normalized), headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON_V1
    assert r.json()["name"] == project.normalized


@pytest.mark.parametrize(
    ("accept", "expected"),
    [(HTML_V1, HTML_V1), ("text/html", "text/html")],
)
def test_html_media_types_are_echoed(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    project: Project,
    accept: str,
    expected: str,
) -> None:
    r = client.get(simple_url(wheelyard_server, project.normalized), headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0].strip() == expected
    assert "<a " in r.text


def test_no_accept_and_wildcard_give_text_html(
    wheelyard_server: RunningServer, project: Project
) -> None:
    path = f"/repositories/default/local/simple/{project.normalized}/"
    status, headers, body = raw_get(wheelyard_server, path)  # no Accept header at all
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<a " in body
    status, headers, _ = raw_get(wheelyard_server, path, {"Accept": "*/*"})
    assert status == 200
    assert headers["content-type"].startswith("text/html")


def test_latest_json_is_answered_with_concrete_v1(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    r = client.get(
        simple_url(wheelyard_server, project.normalized),
        headers={"Accept": "application/vnd.pypi.simple.latest+json"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON_V1


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{JSON_V1};q=0.1, text/html", "text/html"),
        (f"text/html;q=0, {JSON_V1}", JSON_V1),
    ],
)
def test_q_values_are_honoured(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    project: Project,
    accept: str,
    expected: str,
) -> None:
    r = client.get(simple_url(wheelyard_server, project.normalized), headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == expected


def test_plain_application_json_never_gets_application_json(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    r = client.get(
        simple_url(wheelyard_server, project.normalized), headers={"Accept": "application/json"}
    )
    # Our policy is PyPI's: the HTML default (not 406).
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert not r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("accept", ["text/html", HTML_V1, JSON_V1, "*/*"])
@pytest.mark.parametrize("page", ["project", "root"])
def test_every_simple_response_has_vary_accept_and_content_type(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project, accept: str, page: str
) -> None:
    url = (
        simple_url(wheelyard_server, project.normalized)
        if page == "project"
        else wheelyard_server.local_simple
    )
    for method in ("GET", "HEAD"):
        r = client.request(method, url, headers={"Accept": accept})
        assert r.status_code == 200
        vary = [v.strip().lower() for v in r.headers.get("vary", "").split(",")]
        assert "accept" in vary, r.headers
        assert r.headers.get("content-type")
    # A revalidation (304) must carry the same Vary (RFC 9110 §15.4.5).
    etag = client.get(url, headers={"Accept": accept}).headers["etag"]
    r = client.get(url, headers={"Accept": accept, "If-None-Match": etag})
    assert r.status_code == 304
    assert "accept" in r.headers.get("vary", "").lower()


# ------------------------------------------------------------------------------------------
# JSON content: PEP 691 with PEP 700 and PEP 714 (docs/standards.md §4)


def test_project_json_has_normalized_name_files_versions_meta(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    data = get_json_page(client, wheelyard_server, project.normalized)
    assert data["name"] == project.normalized
    assert isinstance(data["files"], list) and data["files"]
    assert isinstance(data["versions"], list)
    assert re.fullmatch(r"1\.\d+", data["meta"]["api-version"])


def test_every_file_has_filename_url_sha256_and_true_size(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    data = get_json_page(client, wheelyard_server, project.normalized)
    assert {f["filename"] for f in data["files"]} == set(project.files)
    for f in data["files"]:
        assert isinstance(f["url"], str) and f["url"]
        assert SHA256_HEX.match(f["hashes"]["sha256"])
        assert isinstance(f["size"], int) and not isinstance(f["size"], bool)
        served = client.get(urljoin(simple_url(wheelyard_server, project.normalized), f["url"]))
        assert served.status_code == 200
        assert f["size"] == len(served.content) == len(project.files[f["filename"]])


def test_upload_time_format(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    data = get_json_page(client, wheelyard_server, project.normalized)
    for f in data["files"]:
        assert UPLOAD_TIME.match(f["upload-time"]), f["upload-time"]


def test_versions_cover_every_file(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    data = get_json_page(client, wheelyard_server, project.normalized)
    file_versions = {version_of(f["filename"]) for f in data["files"]}
    assert file_versions == {"1.0", "2.0"}
    assert file_versions <= set(data["versions"])


def test_json_never_contains_dist_info_metadata(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    for url in (simple_url(wheelyard_server, project.normalized), wheelyard_server.local_simple):
        r = client.get(url, headers={"Accept": JSON_V1})
        assert r.status_code == 200
        assert "dist-info-metadata" not in set(keys_anywhere(r.json()))
        assert b'"dist-info-metadata"' not in r.content


def test_urls_resolve_to_files_with_matching_sha256(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    page_url = simple_url(wheelyard_server, project.normalized)
    data = get_json_page(client, wheelyard_server, project.normalized)
    for f in data["files"]:
        r = client.get(urljoin(page_url, f["url"]))
        assert r.status_code == 200
        assert sha256(r.content) == f["hashes"]["sha256"]
        assert r.content == project.files[f["filename"]]


# ------------------------------------------------------------------------------------------
# HTML content: PEP 503, PEP 629, PEP 658/714 (docs/standards.md §3 and §8)


@pytest.mark.parametrize("page", ["project", "root"])
def test_html_declares_repository_version_at_most_1_4(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project, page: str
) -> None:
    url = (
        simple_url(wheelyard_server, project.normalized)
        if page == "project"
        else wheelyard_server.local_simple
    )
    metas = parse_page(client.get(url).text).metas
    versions = [m.get("content") for m in metas if m.get("name") == "pypi:repository-version"]
    assert len(versions) == 1
    match = re.fullmatch(r"1\.(\d+)", versions[0] or "")
    assert match and int(match.group(1)) <= 4


def test_anchor_text_is_href_last_segment_and_sha256_fragment(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    anchors = parse_page(get_html_page(client, wheelyard_server, project.normalized)).anchors
    assert anchors
    for a in anchors:
        parts = urlsplit(a.href)
        assert unquote(parts.path.rsplit("/", 1)[-1]) == a.text
        assert a.text in project.files
        match = re.fullmatch(r"sha256=([0-9a-f]{64})", parts.fragment)
        assert match, a.href
        assert match.group(1) == sha256(project.files[a.text])


def test_requires_python_is_escaped_and_parses_back(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    html = get_html_page(client, wheelyard_server, project.normalized)
    wheel = filename_of(project, WHEEL_1)
    raw_anchor = next(line for line in html.splitlines() if f">{wheel}</a>" in line)
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in raw_anchor
    assert anchors_by_filename(html)[wheel].attrs["data-requires-python"] == ">=3.8,<4"
    page = ProjectPage.from_html(
        project.normalized, html, base_url=simple_url(wheelyard_server, project.normalized)
    )
    by_name = {p.filename: p for p in page.packages}
    assert by_name[wheel].requires_python == ">=3.8,<4"
    data = get_json_page(client, wheelyard_server, project.normalized)
    (entry,) = [f for f in data["files"] if f["filename"] == wheel]
    assert entry["requires-python"] == ">=3.8,<4"


def test_no_requires_python_means_no_attribute_and_null_json(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    anchors = anchors_by_filename(get_html_page(client, wheelyard_server, project.normalized))
    data = get_json_page(client, wheelyard_server, project.normalized)
    by_name = {f["filename"]: f for f in data["files"]}
    for which in (WHEEL_2, SDIST_1):
        filename = filename_of(project, which)
        assert "data-requires-python" not in anchors[filename].attrs
        assert by_name[filename].get("requires-python") is None


def test_pep503_parsers_read_the_page_without_errors(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    url = simple_url(wheelyard_server, project.normalized)
    html = get_html_page(client, wheelyard_server, project.normalized)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. pypi-simple's UnexpectedRepoVersionWarning
        page = ProjectPage.from_html(project.normalized, html, base_url=url)
        json_page = ProjectPage.from_json_data(
            get_json_page(client, wheelyard_server, project.normalized), url
        )
    for parsed in (page, json_page):
        assert sorted(p.filename for p in parsed.packages) == sorted(project.files)
        for package in parsed.packages:
            assert package.digests == {"sha256": sha256(project.files[package.filename])}
            assert package.project is not None and canonicalize_name(package.project) == (
                project.normalized
            )
    # uv refuses a whole page over one unsupported algorithm: only sha256 may appear.
    algorithms = re.findall(r"#(\w+)=", html) + re.findall(r'metadata="(\w+)=', html)
    assert algorithms and set(algorithms) == {"sha256"}


def test_wheel_metadata_hash_matches(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    anchors = anchors_by_filename(get_html_page(client, wheelyard_server, project.normalized))
    for which in (WHEEL_1, WHEEL_2):
        anchor = anchors[filename_of(project, which)]
        match = re.fullmatch(r"sha256=([0-9a-f]{64})", anchor.attrs["data-core-metadata"] or "")
        assert match, anchor.attrs
        file_url = anchor.href.split("#", 1)[0]
        r = client.get(file_url + ".metadata")
        assert r.status_code == 200
        assert sha256(r.content) == match.group(1)


def test_metadata_bytes_identical_to_wheel_member(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    data = get_json_page(client, wheelyard_server, project.normalized)
    for which in (WHEEL_1, WHEEL_2):
        filename = filename_of(project, which)
        (entry,) = [f for f in data["files"] if f["filename"] == filename]
        served = client.get(entry["url"] + ".metadata")
        assert served.status_code == 200
        assert served.content == wheel_metadata_bytes(project.files[filename])
    # The CRLF / non-ASCII METADATA proves there is no re-serialization.
    assert b"\r\n" in wheel_metadata_bytes(project.files[filename_of(project, WHEEL_1)])


def test_dist_info_metadata_equals_core_metadata_and_json_hash(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    anchors = anchors_by_filename(get_html_page(client, wheelyard_server, project.normalized))
    data = get_json_page(client, wheelyard_server, project.normalized)
    by_name = {f["filename"]: f for f in data["files"]}
    for which in (WHEEL_1, WHEEL_2):
        filename = filename_of(project, which)
        attrs = anchors[filename].attrs
        if "data-dist-info-metadata" in attrs:
            assert attrs["data-dist-info-metadata"] == attrs["data-core-metadata"]
        expected = sha256(wheel_metadata_bytes(project.files[filename]))
        assert attrs["data-core-metadata"] == f"sha256={expected}"
        assert by_name[filename]["core-metadata"] == {"sha256": expected}


def test_file_without_metadata_advertises_none(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    sdist = filename_of(project, SDIST_1)
    attrs = anchors_by_filename(get_html_page(client, wheelyard_server, project.normalized))[
        sdist
    ].attrs
    assert "data-core-metadata" not in attrs
    assert "data-dist-info-metadata" not in attrs
    data = get_json_page(client, wheelyard_server, project.normalized)
    (entry,) = [f for f in data["files"] if f["filename"] == sdist]
    assert entry.get("core-metadata", False) is False
    assert client.get(entry["url"]).status_code == 200
    assert client.get(entry["url"] + ".metadata").status_code == 404


def test_file_urls_carry_no_query_string(
    client: httpx.Client, wheelyard_server: RunningServer, project: Project
) -> None:
    for a in parse_page(get_html_page(client, wheelyard_server, project.normalized)).anchors:
        assert not urlsplit(a.href).query and "?" not in a.href
    for f in get_json_page(client, wheelyard_server, project.normalized)["files"]:
        assert not urlsplit(f["url"]).query and "?" not in f["url"]


# ------------------------------------------------------------------------------------------
# Yanking: PEP 592 (docs/standards.md §3 and §6)


def test_yank_with_reason(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = fresh_project(wheelyard_server, tmp_path, "1.0")
    reason = 'broken <build> & "bad" wheel'
    r = client.post(
        yank_api(wheelyard_server, name, "1.0") + "/yank",
        json={"reason": reason},
        auth=wheelyard_server.admin,
    )
    assert r.status_code == 200, r.text
    html = get_html_page(client, wheelyard_server, name)
    (anchor,) = parse_page(html).anchors
    assert anchor.attrs["data-yanked"] == reason
    assert 'data-yanked="broken &lt;build&gt; &amp; &quot;bad&quot; wheel"' in html
    page = ProjectPage.from_html(name, html, base_url=simple_url(wheelyard_server, name))
    assert page.packages[0].is_yanked and page.packages[0].yanked_reason == reason
    (entry,) = get_json_page(client, wheelyard_server, name)["files"]
    assert entry["yanked"] == reason
    download = client.get(entry["url"])
    assert download.status_code == 200
    assert sha256(download.content) == entry["hashes"]["sha256"]


@pytest.mark.parametrize("body", [None, {}, {"reason": ""}], ids=["no-body", "empty", "blank"])
def test_yank_without_reason(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    tmp_path: Path,
    body: dict[str, str] | None,
) -> None:
    name = fresh_project(wheelyard_server, tmp_path, "1.0")
    url = yank_api(wheelyard_server, name, "1.0") + "/yank"
    r = (
        client.post(url, json=body, auth=wheelyard_server.admin)
        if body is not None
        else (client.post(url, auth=wheelyard_server.admin))
    )
    assert r.status_code == 200, r.text
    html = get_html_page(client, wheelyard_server, name)
    assert 'data-yanked=""' in html
    assert not re.search(r"data-yanked(?!=)", html), "a bare data-yanked attribute"
    (anchor,) = parse_page(html).anchors
    assert anchor.attrs["data-yanked"] == ""  # pip's parser: present with a value
    (entry,) = get_json_page(client, wheelyard_server, name)["files"]
    assert entry["yanked"] is True
    assert client.get(entry["url"]).status_code == 200


def test_unyank_clears_the_flag(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = fresh_project(wheelyard_server, tmp_path, "1.0")
    api = yank_api(wheelyard_server, name, "1.0")
    assert client.post(
        api + "/yank", json={"reason": "oops"}, auth=wheelyard_server.admin
    ).is_success
    assert get_json_page(client, wheelyard_server, name)["files"][0]["yanked"] == "oops"
    r = client.post(api + "/unyank", auth=wheelyard_server.admin)
    assert r.status_code == 200, r.text
    html = get_html_page(client, wheelyard_server, name)
    assert "data-yanked" not in html
    (entry,) = get_json_page(client, wheelyard_server, name)["files"]
    assert entry["yanked"] is False


# ------------------------------------------------------------------------------------------
# Downloads: HEAD gives the length; byte ranges work (RFC 9110 §14: uv reads a wheel's zip
# directory with a suffix range when no `.metadata` is offered); never a Content-Encoding, which
# would change the bytes whose sha256 the installer checks


@pytest.mark.parametrize(
    ("which", "metadata"), [(WHEEL_1, False), (SDIST_1, False), (WHEEL_1, True)]
)
def test_head_range_and_no_content_encoding(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    project: Project,
    which: str,
    metadata: bool,
) -> None:
    filename = filename_of(project, which)
    content = project.files[filename]
    version = version_of(filename)
    if metadata:
        filename += ".metadata"
        content = wheel_metadata_bytes(content)
    url = f"{wheelyard_server.local}/{project.normalized}/{version}/{filename}"
    gzip_ok = {"Accept-Encoding": "gzip, deflate, br, zstd"}
    head = client.head(url, headers=gzip_ok)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(content))
    assert head.headers["accept-ranges"] == "bytes"
    assert "content-encoding" not in head.headers
    full = client.get(url, headers=gzip_ok)
    assert full.status_code == 200 and full.content == content
    assert "content-encoding" not in full.headers
    tail = client.get(url, headers={**gzip_ok, "Range": "bytes=-22"})
    assert tail.status_code == 206
    assert tail.content == content[-22:]
    assert (
        tail.headers["content-range"]
        == f"bytes {len(content) - 22}-{len(content) - 1}/{len(content)}"
    )
    assert "content-encoding" not in tail.headers


# ------------------------------------------------------------------------------------------
# PyPI JSON API: as warehouse's legacy/api/json.py serves it (docs/standards.md §10)


@pytest.fixture(scope="module")
def json_api_project(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """`Json.Api-<hex>` with 1.0, 2.0, 3.0 (yanked) and 4.0a1: the latest is 2.0."""
    directory = tmp_path_factory.mktemp("pypi-json")
    name = unique_project("Json.Api")
    publish(
        wheelyard_server, [make_wheel(directory, name, v) for v in ("1.0", "2.0", "3.0", "4.0a1")]
    )
    r = client.post(
        yank_api(wheelyard_server, canonicalize_name(name), "3.0") + "/yank",
        json={"reason": "bad"},
        auth=wheelyard_server.admin,
    )
    assert r.status_code == 200, r.text
    return name


@pytest.mark.parametrize("tail", ["json", "json/", "1.0/json", "1.0/json/"])
def test_pypi_json_non_normalized_name_redirects(
    client: httpx.Client, wheelyard_server: RunningServer, json_api_project: str, tail: str
) -> None:
    normalized = canonicalize_name(json_api_project)
    spelled = json_api_project.replace(".", "_")
    url = f"{wheelyard_server.local}/pypi/{spelled}/{tail}"
    r = client.get(url)
    assert r.status_code == 301
    target = urljoin(url, r.headers["location"])
    assert target.rstrip("/") == f"{wheelyard_server.local}/pypi/{normalized}/{tail}".rstrip("/")
    assert client.get(target).status_code == 200


def test_pypi_json_project_document(
    client: httpx.Client, wheelyard_server: RunningServer, json_api_project: str
) -> None:
    normalized = canonicalize_name(json_api_project)
    r = client.get(f"{wheelyard_server.local}/pypi/{normalized}/json")
    assert r.status_code == 200
    data = r.json()
    assert canonicalize_name(data["info"]["name"]) == normalized
    assert data["info"]["version"] == "2.0"  # latest non-yanked, non-prerelease
    assert set(data["releases"]) == {"1.0", "2.0", "3.0", "4.0a1"}
    assert [u["filename"] for u in data["urls"]] == [
        f"{normalized.replace('-', '_')}-2.0-py3-none-any.whl"
    ]
    for url in data["urls"]:
        download = client.get(url["url"])
        assert sha256(download.content) == url["digests"]["sha256"]
    json.dumps(data)  # plain JSON all the way down


def test_pypi_json_release_document_and_unknown_version(
    client: httpx.Client, wheelyard_server: RunningServer, json_api_project: str
) -> None:
    normalized = canonicalize_name(json_api_project)
    r = client.get(f"{wheelyard_server.local}/pypi/{normalized}/1.0/json")
    assert r.status_code == 200
    data = r.json()
    assert "releases" not in data
    assert data["info"]["version"] == "1.0"
    assert len(data["urls"]) == 1 and SHA256_HEX.match(data["urls"][0]["digests"]["sha256"])
    assert client.get(f"{wheelyard_server.local}/pypi/{normalized}/1.0.0/json").status_code == 200
    missing = client.get(f"{wheelyard_server.local}/pypi/{normalized}/9.9/json")
    assert missing.status_code == 404
    assert client.get(f"{wheelyard_server.local}/pypi/{unique_project()}/json").status_code == 404
