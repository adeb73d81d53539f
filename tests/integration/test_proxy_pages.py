"""Proxy repositories, pages: what an upstream page becomes on our side, and when we ask again.

Everything runs against the session server (`proxy_env`) and a local upstream it proxies.
"""

from __future__ import annotations

import hashlib
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
from packaging.utils import canonicalize_name

from wheelyard.shared.auth.passwords import hash_password
from wheelyard.shared.config import Settings
from wheelyard.shared.domain.bootstrap import bootstrap
from wheelyard.shared.domain.repositories import load_repository
from wheelyard.testing.db_fixtures import Database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.proxy_env import ADMIN, ProxyEnv
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.upstream import UpstreamFile

JSON_V1 = "application/vnd.pypi.simple.v1+json"


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(html: str) -> list[dict[str, str | None]]:
    parser = _Anchors()
    parser.feed(html)
    return parser.anchors


def test_proxied_pages_keep_requires_python_yanked_core_metadata_size_upload_time(
    proxy_env: ProxyEnv,
) -> None:
    name = unique_project("fidelity")
    project = proxy_env.upstream.add_project(
        name,
        ("1.0", "2.0"),
        requires_python=">=3.8,<4",
        yanked={"1.0": "broken build"},
        sdist=True,
    )
    response = proxy_env.page("pypi", canonicalize_name(name))
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_V1
    assert response.headers["vary"] == "Accept, Authorization"
    data = response.json()
    assert data["versions"] == ["1.0", "2.0"]
    by_name = {f["filename"]: f for f in data["files"]}
    assert set(by_name) == {f.filename for f in project.files}
    for up in project.files:
        ours = by_name[up.filename]
        assert ours["hashes"] == {"sha256": up.sha256}
        assert ours["requires-python"] == ">=3.8,<4"
        assert ours["size"] == len(up.data)
        assert ours["upload-time"] == up.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert ours["yanked"] == ("broken build" if "-1.0" in up.filename else False)
        if up.metadata is not None:
            assert ours["core-metadata"] == {"sha256": up.metadata_sha256}
        else:
            assert ours["core-metadata"] is False
        # Our URL, exact filename last, no query; never the upstream's.
        version = "1.0" if "-1.0" in up.filename else "2.0"
        assert ours["url"] == (
            f"{proxy_env.repo('pypi')}/{canonicalize_name(name)}/{version}/{quote(up.filename)}"
        )
        assert not urlsplit(ours["url"]).query

    html = proxy_env.page("pypi", canonicalize_name(name), json=False)
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "&gt;=3.8,&lt;4" in html.text  # escaped, as hatch's regex needs
    links = {a["href"].rsplit("/", 1)[1].split("#")[0]: a for a in anchors(html.text)}
    wheel = project.files[0]
    attrs = links[wheel.filename]
    assert attrs["href"].endswith(f"#sha256={wheel.sha256}")
    assert attrs["data-requires-python"] == ">=3.8,<4"
    assert attrs["data-yanked"] == "broken build"
    assert attrs["data-core-metadata"] == f"sha256={wheel.metadata_sha256}"
    assert "data-yanked" not in links[project.files[-1].filename]

    # The advertised .metadata exists and hashes to what the page says.
    metadata = httpx.get(by_name[wheel.filename]["url"] + ".metadata", timeout=30)
    assert metadata.status_code == 200
    assert metadata.content == wheel.metadata
    assert hashlib.sha256(metadata.content).hexdigest() == wheel.metadata_sha256


def test_html_only_upstream_with_relative_links(proxy_env: ProxyEnv) -> None:
    """An upstream without PEP 691 is parsed from HTML; its relative links resolve."""
    proxy_env.second.formats = ("html",)
    try:
        name = unique_project("htmlonly")
        project = proxy_env.second.add_project(name, ("1.0",), requires_python=">=3.9", sdist=True)
        data = proxy_env.page("multi", canonicalize_name(name)).json()
    finally:
        proxy_env.second.formats = ("json", "html")
    assert [f["filename"] for f in data["files"]] == [f.filename for f in project.files]
    wheel = data["files"][0]
    assert wheel["requires-python"] == ">=3.9"
    assert wheel["core-metadata"] == {"sha256": project.files[0].metadata_sha256}
    assert "size" not in wheel  # HTML pages carry no size; we do not invent one
    body = httpx.get(wheel["url"], timeout=30).content
    assert body == project.files[0].data


def test_percent_encoded_local_version_filenames(proxy_env: ProxyEnv, tmp_path) -> None:
    name = unique_project("localver")
    path = make_wheel(tmp_path, name, "2.1.0+cu121")
    assert "+cu121" in path.name
    proxy_env.upstream.add_file(name, UpstreamFile(path.name, path.read_bytes()))
    data = proxy_env.page("pypi", canonicalize_name(name)).json()
    url = data["files"][0]["url"]
    assert url.endswith("/2.1.0%2Bcu121/" + quote(path.name, safe=""))
    assert "%2B" in url.rsplit("/", 1)[1]
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == path.read_bytes()


def test_fresh_pages_are_served_without_asking_the_upstream(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("fresh"))
    proxy_env.upstream.add_project(name, ("1.0",))
    first = proxy_env.page("pypi", name)
    assert first.status_code == 200
    for json in (True, False, True):
        assert proxy_env.page("pypi", name, json=json).status_code == 200
    assert proxy_env.upstream.page_hits(name) == 1
    # Our own ETag: a client revalidating gets a 304 without a body.
    again = proxy_env.page("pypi", name, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert proxy_env.upstream.page_hits(name) == 1


def test_stale_pages_are_revalidated_with_the_upstream_etag(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("revalidate"))
    project = proxy_env.upstream.add_project(name, ("1.0",))
    first = proxy_env.page("short", name)
    assert first.status_code == 200
    time.sleep(1.2)  # past the repository's 1 s TTL
    second = proxy_env.page("short", name)
    assert second.status_code == 200
    assert second.content == first.content
    # The upstream saw a conditional request and answered 304: no body was downloaded again.
    assert proxy_env.upstream.page_hits(name, 200) == 1
    assert proxy_env.upstream.page_hits(name, 304) == 1
    conditional = [h for m, p, h in proxy_env.upstream.requests if p == f"/simple/{name}/"][-1]
    assert conditional.get("if-none-match")
    # A change upstream is picked up at the next revalidation.
    proxy_env.upstream.add_project(name, ("2.0",))
    time.sleep(1.2)
    third = proxy_env.page("short", name).json()
    assert third["versions"] == ["1.0", "2.0"]
    assert len(third["files"]) == len(project.files)
    assert proxy_env.upstream.page_hits(name, 200) == 2


def test_a_lower_upstream_serial_never_replaces_a_newer_page(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("serial"))
    project = proxy_env.upstream.add_project(name, ("1.0", "2.0"))
    assert len(proxy_env.page("short", name).json()["files"]) == 2
    # A lagging mirror: an older page (one file fewer) with a lower serial.
    project.files.pop()
    project.serial = 1
    time.sleep(1.2)
    after = proxy_env.page("short", name)
    assert after.status_code == 200
    assert len(after.json()["files"]) == 2
    assert proxy_env.upstream.page_hits(name, 200) == 2


def test_upstream_404_is_negative_cached_until_the_cache_is_dropped(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("missing"))
    assert proxy_env.page("short", name).status_code == 404
    assert proxy_env.page("short", name).status_code == 404
    assert proxy_env.upstream.page_hits(name) == 1  # the second 404 came from the negative entry
    proxy_env.upstream.add_project(name, ("1.0",))
    time.sleep(1.2)  # past the TTL of pages, well within the negative entry's
    assert proxy_env.page("short", name).status_code == 404
    assert proxy_env.upstream.page_hits(name) == 1
    cache_url = f"{proxy_env.url}/api/v1/repositories/default/short/cache/{name}"
    assert httpx.delete(cache_url, timeout=30).status_code == 401
    assert httpx.delete(cache_url, auth=ADMIN, timeout=30).status_code == 204
    assert proxy_env.page("short", name).status_code == 200
    assert proxy_env.upstream.page_hits(name) == 2


def test_cache_delete_forces_a_full_refetch_and_is_for_admins_only(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("refresh"))
    proxy_env.upstream.add_project(name, ("1.0",))
    assert proxy_env.page("pypi", name).json()["versions"] == ["1.0"]
    proxy_env.upstream.add_project(name, ("1.1",))
    assert proxy_env.page("pypi", name).json()["versions"] == ["1.0"]  # fresh for 10 minutes

    username = unique_project("reader")
    proxy_env.sql(
        "INSERT INTO users (username, password_hash, is_admin, is_active, created_at, "
        "password_changed_at) VALUES (?, ?, 0, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        (username, hash_password("reader-password")),
    )
    cache_url = f"{proxy_env.url}/api/v1/repositories/default/pypi/cache/{name}"
    assert httpx.delete(cache_url, timeout=30).status_code == 401
    denied = httpx.delete(cache_url, auth=(username, "reader-password"), timeout=30)
    assert denied.status_code == 403
    assert httpx.delete(cache_url, auth=ADMIN, timeout=30).status_code == 204
    assert proxy_env.page("pypi", name).json()["versions"] == ["1.0", "1.1"]
    # In full: the validators were dropped, so the upstream sent the body again (no 304).
    assert proxy_env.upstream.page_hits(name, 200) == 2
    assert proxy_env.upstream.page_hits(name, 304) == 0


def test_several_upstreams_are_tried_in_order(proxy_env: ProxyEnv) -> None:
    only_main = canonicalize_name(unique_project("mainonly"))
    both = canonicalize_name(unique_project("both"))
    proxy_env.upstream.add_project(only_main, ("1.0",))
    proxy_env.upstream.add_project(both, ("1.0",))
    proxy_env.second.add_project(both, ("7.0",))
    # The first upstream does not know it (404), the second does.
    main_page = proxy_env.page("multi", only_main).json()
    assert main_page["versions"] == ["1.0"]
    assert proxy_env.second.page_hits(only_main) == 1
    # The first upstream that knows the project wins; the others are not asked.
    first_page = proxy_env.page("multi", both).json()
    assert first_page["versions"] == ["7.0"]
    assert proxy_env.upstream.page_hits(both) == 0
    for page, upstream in ((main_page, proxy_env.upstream), (first_page, proxy_env.second)):
        url = page["files"][0]["url"]
        body = httpx.get(url, timeout=30).content
        assert hashlib.sha256(body).hexdigest() == page["files"][0]["hashes"]["sha256"]
        assert upstream.file_hits(page["files"][0]["filename"]) == 1


def test_private_proxy_checks_the_reader_before_asking_the_upstream(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("private"))
    project = proxy_env.upstream.add_project(name, ("1.0",))
    denied = proxy_env.page("secret", name)
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Basic")
    file_url = f"{proxy_env.repo('secret')}/{name}/1.0/{project.files[0].filename}"
    assert httpx.get(file_url, timeout=30).status_code == 401
    assert proxy_env.upstream.page_hits(name) == 0
    assert proxy_env.upstream.file_hits(project.files[0].filename) == 0
    allowed = proxy_env.page("secret", name, auth=ADMIN)
    assert allowed.status_code == 200
    assert allowed.headers["cache-control"] == "private, no-cache"
    assert httpx.get(file_url, auth=ADMIN, timeout=30).content == project.files[0].data


def test_redirects_keep_the_prefix_and_normalize_names(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("redirect"))
    proxy_env.upstream.add_project(name, ("1.0",))
    base = proxy_env.repo("pypi")
    shown = name.replace("-", "_").upper()
    for path, location in (
        ("/simple", "simple/"),
        (f"/simple/{shown}", f"{name}/"),
        (f"/simple/{shown}/", f"../{name}/"),
        (f"/simple/{name}", f"{name}/"),
    ):
        response = httpx.get(base + path, timeout=30)
        assert response.status_code == 301, path
        assert response.headers["location"] == location
    assert httpx.get(base + "/simple", follow_redirects=True, timeout=30).status_code == 200


def test_proxy_root_lists_cached_projects_without_asking_the_upstream(proxy_env: ProxyEnv) -> None:
    name = canonicalize_name(unique_project("rooted"))
    proxy_env.upstream.add_project(name, ("1.0",))
    assert proxy_env.page("pypi", name).status_code == 200
    root = httpx.get(f"{proxy_env.repo('pypi')}/simple/", headers={"Accept": JSON_V1}, timeout=30)
    assert root.status_code == 200
    assert {"name": name} in root.json()["projects"]
    assert proxy_env.upstream.hits["/simple/"] == 0


def test_a_hostile_upstream_page_is_re_emitted_sanitised(proxy_env: ProxyEnv) -> None:
    """javascript: links, `../` filenames, markup in attributes: our page lists only plausible
    distribution files, at our own URLs, with escaped values (docs/standards.md §9)."""
    name = canonicalize_name(unique_project("hostile"))
    good = proxy_env.upstream.add_project(name, ("1.0",)).files[0]
    sha = good.sha256
    body = f"""<!DOCTYPE html><html><body>
<a href="javascript:alert(1)//{name}-6.6.tar.gz">{name}-6.6.tar.gz</a>
<a href="../../files/x/..%2F..%2Fetc%2Fpasswd.whl#sha256={sha}">../../etc/passwd.whl</a>
<a href="file:///etc/passwd#sha256={sha}">{name}-7.0.tar.gz</a>
<a href="{proxy_env.upstream.url}{good.path}#sha256={sha}"
   data-requires-python='"><script>x</script>' data-yanked="<b>bad</b>"
   onclick="steal()">{good.filename}</a>
</body></html>""".encode()
    proxy_env.upstream.serve_page(name, body, "text/html")
    page = proxy_env.page("pypi", name).json()
    assert [f["filename"] for f in page["files"]] == [good.filename]
    entry = page["files"][0]
    assert entry["url"] == f"{proxy_env.repo('pypi')}/{name}/1.0/{good.filename}"
    assert entry["hashes"] == {"sha256": sha}
    assert "requires-python" not in entry  # not a specifier: dropped
    assert entry["yanked"] == "<b>bad</b>"  # kept as text ...
    html = proxy_env.page("pypi", name, json=False).text
    assert "<b>" not in html and "<script>" not in html  # ... and escaped in HTML
    assert "onclick" not in html and "javascript:" not in html
    assert httpx.get(entry["url"], timeout=30).content == good.data


def test_upstream_credentials_are_sent_to_the_upstream(proxy_env: ProxyEnv) -> None:
    project = proxy_env.upstream.add_project(unique_project("authed"), ("1.0",))
    wheel = project.files[0]
    proxy_env.upstream.require_auth("mirror", "s3cret", prefix=f"/simple/{project.normalized}/")
    page = proxy_env.page("authed", project.normalized)
    assert page.status_code == 200
    sent = [h for _, p, h in proxy_env.upstream.requests if p == f"/simple/{project.normalized}/"]
    assert sent[-1]["authorization"].startswith("Basic ")
    # The same upstream without the credentials: its 401 is the upstream's failure, a 502.
    assert proxy_env.page("pypi", project.normalized).status_code == 502
    proxy_env.upstream.require_auth("mirror", "s3cret", prefix=wheel.path)
    url = page.json()["files"][0]["url"]
    assert httpx.get(url, timeout=30).content == wheel.data


async def test_default_pypi_repository_follows_the_environment_at_every_start(
    database: Database, tmp_path: Path
) -> None:
    first = Settings(data_dir=tmp_path, pypi_proxy="http://127.0.0.1:9/", admin_password="x")
    async with database.sessions() as session:
        await bootstrap(session, first)
    later = Settings(
        data_dir=tmp_path,
        pypi_proxy="http://mirror.internal:8080/pypi/simple",
        pypi_proxy_auth="user:pass",
        pypi_proxy_timeout=7,
        pypi_proxy_ttl=120,
        admin_password="x",
    )
    async with database.sessions() as session:
        await bootstrap(session, later)
        pypi = await load_repository(session, "default", "pypi")
        local = await load_repository(session, "default", "local")
    assert [(u.url, u.username, u.password, u.timeout) for u in pypi.upstreams] == [
        ("http://mirror.internal:8080/pypi/simple/", "user", "pass", 7.0)
    ]
    assert pypi.ttl == 120
    assert local.type == "hosted"
