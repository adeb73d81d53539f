"""Proxy repositories read ahead the `.metadata` an installer is sure to ask for next
(`wheelyard.proxy_cache.readahead`): fetched, verified and cached once a cold page is parsed,
never a distribution, and only where no installer could want another file's; then the pages
of the projects it requires without condition, which read ahead in turn.

Against the session server (`proxy_env`) and its local upstream, and a server of its own with
the setting off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import make_sdist, make_wheel
from wheelyard.testing.proxy_env import ProxyEnv, start_server
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.upstream import LocalUpstream, UpstreamFile, UpstreamProject

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def page_urls(base: str, project: UpstreamProject) -> dict[str, str]:
    """filename -> our URL, from `base`'s JSON page of `project` (`base`: a simple URL)."""
    page = httpx.get(f"{base}{project.normalized}/", headers={"Accept": JSON_V1}, timeout=30)
    assert page.status_code == 200, page.text
    return {f["filename"]: f["url"] for f in page.json()["files"]}


def metadata_hits(upstream: LocalUpstream, file: UpstreamFile) -> int:
    return upstream.file_hits(file.filename, metadata=True)


def served_as_read_ahead(upstream: LocalUpstream, url: str, file: UpstreamFile) -> None:
    """The installer's request for `file`'s `.metadata` (at our `url` of the file) gets its
    bytes without another request to the upstream than the read-ahead's."""
    meta = httpx.get(url + ".metadata", timeout=30)
    assert meta.status_code == 200
    assert meta.content == file.metadata
    assert metadata_hits(upstream, file) == 1


def read_ahead_of(upstream: LocalUpstream, base: str, prefix: str) -> None:
    """A control: a page that does read ahead, asked after the page under test; once its
    `.metadata` reached the upstream, a read-ahead started by the earlier page would have."""
    control = upstream.add_project(unique_project(prefix), ("1.0",))
    page_urls(base, control)
    assert eventually(lambda: metadata_hits(upstream, control.files[0]) == 1)


def test_a_cold_page_reads_ahead_the_newest_universal_wheels_metadata(
    proxy_env: ProxyEnv,
) -> None:
    upstream = proxy_env.upstream
    project = upstream.add_project(unique_project("ahead"), ("1.0", "2.0"), sdist=True)
    old, _old_sdist, new, _new_sdist = project.files
    urls = page_urls(proxy_env.repo("pypi") + "/simple/", project)
    assert eventually(lambda: metadata_hits(upstream, new) == 1)
    # Only the newest release's metadata, and no distribution.
    assert metadata_hits(upstream, old) == 0
    assert all(upstream.file_hits(f.filename) == 0 for f in project.files)
    served_as_read_ahead(upstream, urls[new.filename], new)
    older = httpx.get(urls[old.filename] + ".metadata", timeout=30)
    assert older.content == old.metadata
    assert metadata_hits(upstream, old) == 1


def test_the_pages_its_metadata_requires_without_condition_are_read_ahead_in_turn(
    proxy_env: ProxyEnv,
) -> None:
    upstream = proxy_env.upstream
    base = proxy_env.repo("pypi") + "/simple/"
    leaf = upstream.add_project(unique_project("depleaf"), ("1.0",))
    middle = upstream.add_project(
        unique_project("depmid"), ("1.0",), requires_dist=(f"{leaf.name}>=1",)
    )
    conditional = upstream.add_project(unique_project("depcond"), ("1.0",))
    extra = upstream.add_project(unique_project("depextra"), ("1.0",))
    root = upstream.add_project(
        unique_project("deproot"),
        ("1.0",),
        requires_dist=(
            middle.name,
            f'{conditional.name}; sys_platform == "win32"',
            f'{extra.name}; extra == "fast"',
        ),
    )
    page_urls(base, root)
    # The chain: root's page, its .metadata, middle's page, its .metadata, leaf's page...
    assert eventually(lambda: metadata_hits(upstream, leaf.files[0]) == 1)
    assert upstream.page_hits(middle.name) == 1
    assert upstream.page_hits(leaf.name) == 1
    # ...and nothing that applies only on some platforms or with an extra.
    read_ahead_of(upstream, base, "depcontrol")
    assert upstream.page_hits(conditional.name) == 0
    assert upstream.page_hits(extra.name) == 0
    # The installer finds each page and `.metadata` fetched already.
    for project in (middle, leaf):
        urls = page_urls(base, project)
        assert upstream.page_hits(project.name) == 1
        served_as_read_ahead(upstream, urls[project.files[0].filename], project.files[0])


def test_a_dependency_hosted_here_is_never_asked_of_the_upstream(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    # Dependency confusion: a public project requiring an internal name must not make the
    # proxy ask the upstream for it (a group never does for a name a hosted member holds).
    upstream = proxy_env.upstream
    internal = canonicalize_name(unique_project("acme-internal"))
    upstream.add_project(internal, ("99.0",))  # the attacker's public upload
    proxy_env.upload(make_wheel(tmp_path, internal, "1.0"), "internal")
    public_dependency = upstream.add_project(unique_project("confdep"), ("1.0",))
    public = upstream.add_project(
        unique_project("confroot"), ("1.0",), requires_dist=(internal, public_dependency.name)
    )
    page_urls(proxy_env.url + "/simple/", public)
    assert eventually(lambda: metadata_hits(upstream, public_dependency.files[0]) == 1)
    assert upstream.page_hits(internal) == 0


def test_a_group_page_reads_ahead_through_its_proxy_member(proxy_env: ProxyEnv) -> None:
    upstream = proxy_env.upstream
    project = upstream.add_project(unique_project("groupahead"), ("1.0",))
    (wheel,) = project.files
    urls = page_urls(proxy_env.url + "/simple/", project)
    assert eventually(lambda: metadata_hits(upstream, wheel) == 1)
    served_as_read_ahead(upstream, urls[wheel.filename], wheel)


def test_a_yanked_newest_release_reads_ahead_the_release_installers_pick(
    proxy_env: ProxyEnv,
) -> None:
    upstream = proxy_env.upstream
    project = upstream.add_project(
        unique_project("yankedahead"), ("1.0", "2.0"), yanked={"2.0": "broken"}
    )
    kept, yanked = project.files
    page_urls(proxy_env.repo("pypi") + "/simple/", project)
    assert eventually(lambda: metadata_hits(upstream, kept) == 1)
    assert metadata_hits(upstream, yanked) == 0


def test_a_pre_release_is_passed_over_for_the_newest_final_release(proxy_env: ProxyEnv) -> None:
    upstream = proxy_env.upstream
    project = upstream.add_project(unique_project("preahead"), ("1.0", "2.0rc1"))
    final, pre = project.files
    page_urls(proxy_env.repo("pypi") + "/simple/", project)
    assert eventually(lambda: metadata_hits(upstream, final) == 1)
    assert metadata_hits(upstream, pre) == 0


def test_nothing_is_read_ahead_where_an_installer_could_want_another_file(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    upstream = proxy_env.upstream
    base = proxy_env.repo("pypi") + "/simple/"
    # The newest release has a wheel per platform (which one depends on the installer's machine)...
    platforms = upstream.add_project(unique_project("platahead"), ("1.0",))
    for tag in ("cp311-cp311-manylinux_2_28_x86_64", "cp311-cp311-win_amd64"):
        path = make_wheel(tmp_path, platforms.name, "2.0", tag=tag, metadata=b"Name: x\n")
        upstream.add_file(
            platforms.name, UpstreamFile(path.name, path.read_bytes(), metadata=b"Name: x\n")
        )
    # ...or is only an sdist (an installer builds it: there is no `.metadata` to ask for).
    sdist_only = upstream.add_project(unique_project("sdistahead"), ("1.0",))
    sdist = make_sdist(tmp_path, sdist_only.name, "2.0")
    upstream.add_file(sdist_only.name, UpstreamFile(sdist.name, sdist.read_bytes()))
    for project in (platforms, sdist_only):
        page_urls(base, project)
    read_ahead_of(upstream, base, "controlahead")
    for project in (platforms, sdist_only):
        assert all(metadata_hits(upstream, f) == 0 for f in project.files), project.name


def test_nothing_is_read_ahead_when_the_setting_is_off(
    local_upstream: LocalUpstream, tmp_path: Path
) -> None:
    server = start_server(
        tmp_path / "server", local_upstream.simple_url, WHEELYARD_PYPI_PROXY_READ_AHEAD="false"
    )
    try:
        base = f"{server.url}/repositories/default/pypi/simple/"
        project = local_upstream.add_project(unique_project("offahead"), ("1.0",))
        (wheel,) = project.files
        urls = page_urls(base, project)
        time.sleep(1.0)  # a read-ahead takes milliseconds on this machine's loopback
        assert metadata_hits(local_upstream, wheel) == 0
        meta = httpx.get(urls[wheel.filename] + ".metadata", timeout=30)
        assert meta.content == wheel.metadata
        assert metadata_hits(local_upstream, wheel) == 1
    finally:
        server.stop()
