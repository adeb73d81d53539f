"""The route table (`wheelyard.shared.routes`) and the gateway's `Dispatcher`: which service
answers each request, for every kind of repository, in process (no server, no database)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from wheelyard.gateway.dispatch import (
    ALIAS_TARGET,
    Dispatcher,
    Targets,
    apply_alias,
    kinds_from,
)
from wheelyard.shared import routes
from wheelyard.shared.web.fastpath import SCOPE_KEY


class App:
    """A stand-in service app: only its identity matters."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the dispatcher must only pick an app, never call it")

    def __repr__(self) -> str:
        return f"App({self.name})"


INDEX, UPLOAD, PROXY_CACHE = App("index"), App("upload"), App("proxy-cache")
TARGETS = Targets(index=INDEX, upload=UPLOAD, proxy_cache=PROXY_CACHE)
#: Repository kinds as the directory would report them; anything else is unknown (None).
KINDS = {("default", "local"): "hosted", ("default", "pypi"): "proxy", ("default", "all"): "group"}
#: The repository name to use for each kind, and the reader each kind is answered by.
REPO_OF_KIND = {"hosted": "local", "proxy": "pypi", "group": "all", "unknown": "nowhere"}
READER_OF_KIND = {"hosted": INDEX, "proxy": PROXY_CACHE, "group": PROXY_CACHE, "unknown": INDEX}


class Kinds:
    """The kind lookup, recording what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, storage: str, name: str) -> str | None:
        self.asked.append((storage, name))
        return KINDS.get((storage, name))


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": b"",
        "headers": [],
    }


async def dispatch(method: str, path: str) -> tuple[Scope, Any, Kinds]:
    kinds = Kinds()
    scope, app = await Dispatcher(TARGETS, kinds).route(http_scope(method, path))
    return scope, app, kinds


# One request per route of the table: (method, path below the repository, route name). `{r}`
# is the repository base `/repositories/default/<repo>`, `{a}` its management API base.
REQUESTS: list[tuple[str, str, str]] = [
    ("GET", "{r}/simple/demo/", "simple_project"),
    ("HEAD", "{r}/simple/demo/", "simple_project"),
    ("GET", "{r}/+simple/demo/", "simple_project"),
    ("GET", "{r}/demo/1.0/demo-1.0.tar.gz", "download"),
    ("HEAD", "{r}/demo/1.0/demo-1.0-py3-none-any.whl", "download"),
    ("GET", "{r}/simple/", "simple_root"),
    ("GET", "{r}/simple", "simple_root_redirect"),
    ("GET", "{r}/simple/demo", "simple_project_redirect"),
    ("GET", "{r}/pypi/demo/json", "pypi_project"),
    ("GET", "{r}/pypi/demo/json/", "pypi_project"),
    ("GET", "{r}/pypi/demo/1.0/json", "pypi_release"),
    ("GET", "{r}/pypi/demo/1.0/json/", "pypi_release"),
    ("POST", "{r}/", "legacy_upload"),
    ("POST", "{r}", "legacy_upload"),
    ("POST", "{r}/legacy", "legacy_upload"),
    ("POST", "{r}/legacy/", "legacy_upload"),
    ("POST", "{r}/simple", "legacy_upload"),
    ("POST", "{r}/simple/", "legacy_upload"),
    ("PUT", "{r}/demo/1.0/demo-1.0.tar.gz", "raw_upload"),
    ("POST", "{r}/demo/1.0/demo-1.0.tar.gz", "raw_upload"),
    ("GET", "{a}/projects/demo", "project_details"),
    ("POST", "{a}/projects/demo/versions/1.0/yank", "yank"),
    ("POST", "{a}/projects/demo/versions/1.0/unyank", "unyank"),
    ("DELETE", "{a}/projects/demo/versions/1.0", "delete_release"),
    ("DELETE", "{a}/projects/demo/versions/1.0/files/demo-1.0.tar.gz", "delete_file"),
    ("PUT", "{a}/projects/demo/status", "project_status"),
    ("DELETE", "{a}/cache/demo", "expire_cache"),
    ("POST", "{a}/prefetch", "prefetch"),
    ("GET", "{a}/prefetch/0123abcd", "prefetch_job"),
    ("GET", "/api/v1/search", "search"),
    ("GET", "{r}/demo/1.0/demo-1.0.tar.gz/more", "repository_reads"),
    ("GET", "{r}/demo/1.0/demo-1.0.tar.gz/more/", "repository_reads"),
    ("GET", "{r}/demo", "project_page_redirect"),
    ("GET", "{r}/demo/", "project_page_redirect"),
    ("GET", "{r}//demo", "project_page_redirect"),
    ("HEAD", "{r}/demo/1.0/", "project_page_redirect"),
    ("POST", "{r}/pypi", "xmlrpc"),
    ("POST", "{r}/pypi/", "xmlrpc"),
    ("PATCH", "{r}/demo/1.0/demo-1.0.tar.gz", "repository_writes"),
    ("DELETE", "{r}/demo/1.0/demo-1.0.tar.gz", "repository_writes"),
    ("GET", "{a}/projects/demo/versions", "project_reads"),
    ("PATCH", "{a}/projects/demo", "project_writes"),
    ("GET", "{a}/cache/demo", "cache_area"),
]
FIXED = {
    "legacy_upload": UPLOAD,
    "raw_upload": UPLOAD,
    "yank": UPLOAD,
    "unyank": UPLOAD,
    "delete_release": UPLOAD,
    "delete_file": UPLOAD,
    "project_status": UPLOAD,
    "repository_writes": UPLOAD,
    "project_writes": UPLOAD,
    "expire_cache": PROXY_CACHE,
    "prefetch": PROXY_CACHE,
    "prefetch_job": PROXY_CACHE,
    "cache_area": PROXY_CACHE,
    "search": INDEX,
    "xmlrpc": INDEX,
    "project_page_redirect": None,  # the gateway itself
}


def expected_app(route_name: str, kind: str) -> App | None:
    route = next(r for r in routes.ROUTES if r.name == route_name)
    if route.target is routes.Target.READER:
        return READER_OF_KIND[kind]
    return FIXED[route_name]


def test_every_route_of_the_table_is_exercised_here() -> None:
    assert {name for _method, _path, name in REQUESTS} == {r.name for r in routes.ROUTES}
    readers = {r.name for r in routes.ROUTES if r.target is routes.Target.READER}
    assert readers.isdisjoint(FIXED) and readers | set(FIXED) == {r.name for r in routes.ROUTES}


@pytest.mark.parametrize("kind", ["hosted", "proxy", "group", "unknown"])
@pytest.mark.parametrize(("method", "template", "route_name"), REQUESTS)
async def test_each_route_goes_to_its_service_for_each_kind_of_repository(
    method: str, template: str, route_name: str, kind: str
) -> None:
    repo = REPO_OF_KIND[kind]
    path = template.format(
        r=f"/repositories/default/{repo}", a=f"/api/v1/repositories/default/{repo}"
    )

    scope, app, kinds = await dispatch(method, path)

    found = scope[SCOPE_KEY]
    assert isinstance(found, routes.Match)
    assert found.route.name == route_name, (method, path, found.route.name)
    assert app is expected_app(route_name, kind), (method, path, kind, app)
    if "storage" in found.params:
        assert (found.params["storage"], found.params["repo"]) == ("default", repo)
    reads_kind = found.route.target is routes.Target.READER
    assert kinds.asked == ([("default", repo)] if reads_kind else [])


@pytest.mark.parametrize("kind", ["hosted", "proxy", "group", "unknown"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_write_methods_on_a_repository_go_to_upload_whatever_its_kind(
    method: str, kind: str
) -> None:
    base = f"/repositories/default/{REPO_OF_KIND[kind]}"
    for path in (f"{base}/demo/1.0/demo-1.0.tar.gz", f"{base}/anything/below/the/repository"):
        _scope, app, _kinds = await dispatch(method, path)
        assert app is UPLOAD, (method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/alice"),
        ("POST", "/api/v1/auth/token"),
        ("GET", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/3"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/repositories"),
        ("POST", "/api/v1/repositories"),
        ("GET", "/api/v1/repositories/default/local"),
        ("PATCH", "/api/v1/repositories/default/local"),
        ("DELETE", "/api/v1/repositories/default/local"),
        ("PUT", "/api/v1/repositories/default/local/permissions/alice"),
        ("GET", "/api/v1/repositories/default/local/permissions"),
        ("GET", "/repositories"),
        ("GET", "/repositories/default"),
        ("OPTIONS", "/repositories/default/local/simple/demo/"),
        ("GET", "/simplex/"),
    ],
)
async def test_management_and_unknown_paths_are_the_gateways_own(method: str, path: str) -> None:
    scope, app, kinds = await dispatch(method, path)

    assert app is None
    assert SCOPE_KEY not in scope
    assert scope["path"] == path  # not an alias: left as it was
    assert kinds.asked == []


@pytest.mark.parametrize(
    ("path", "rewritten", "route_name"),
    [
        ("/simple/", "/repositories/default/all/simple/", "simple_root"),
        ("/simple", "/repositories/default/all/simple", "simple_root_redirect"),
        ("/simple/demo/", "/repositories/default/all/simple/demo/", "simple_project"),
        ("/simple/demo", "/repositories/default/all/simple/demo", "simple_project_redirect"),
        ("/pypi/demo/json", "/repositories/default/all/pypi/demo/json", "pypi_project"),
        ("/pypi/demo/1.0/json", "/repositories/default/all/pypi/demo/1.0/json", "pypi_release"),
    ],
)
async def test_root_aliases_read_the_default_group(
    path: str, rewritten: str, route_name: str
) -> None:
    original = http_scope("GET", path)

    scope, app = await Dispatcher(TARGETS, Kinds()).route(original)

    assert scope["path"] == rewritten
    assert scope["raw_path"] == rewritten.encode()
    assert scope[SCOPE_KEY].route.name == route_name
    assert scope[SCOPE_KEY].params["repo"] == "all"
    assert app is PROXY_CACHE  # `default/all` is a group
    # The caller's scope is not changed: the dispatcher works on a copy.
    assert original["path"] == path and SCOPE_KEY not in original


def test_apply_alias_rewrites_only_whole_alias_segments() -> None:
    assert ALIAS_TARGET == "/repositories/default/all"
    assert apply_alias(http_scope("GET", "/simple/x/"))["path"] == ALIAS_TARGET + "/simple/x/"
    assert apply_alias(http_scope("GET", "/pypi"))["path"] == ALIAS_TARGET + "/pypi"
    for path in ("/simplex/", "/pypis/x/json", "/api/v1/simple/", "/repositories/a/b/simple/"):
        assert apply_alias(http_scope("GET", path))["path"] == path


async def test_an_aliased_upload_goes_to_upload() -> None:
    scope, app, _kinds = await dispatch("POST", "/simple/")

    assert scope["path"] == "/repositories/default/all/simple/"
    assert scope[SCOPE_KEY].route is routes.LEGACY_UPLOAD
    assert app is UPLOAD


def test_pypi_json_is_not_taken_for_a_download() -> None:
    # DOWNLOAD's template (`<project>/<version>/<filename>`) matches `pypi/<p>/json` too: the
    # table lists PYPI_PROJECT first so the JSON API wins.
    found = routes.match("GET", "/repositories/default/local/pypi/demo/json")
    assert found is not None
    assert found.route is routes.PYPI_PROJECT
    assert found.params == {"storage": "default", "repo": "local", "project": "demo"}
    assert routes.ROUTES.index(routes.PYPI_PROJECT) < routes.ROUTES.index(routes.DOWNLOAD)
    # ... while a real file of a project called `pypi` is still a download.
    found = routes.match("GET", "/repositories/default/local/pypi/1.0/pypi-1.0.tar.gz")
    assert found is not None and found.route is routes.DOWNLOAD
    assert found.params["project"] == "pypi" and found.params["filename"] == "pypi-1.0.tar.gz"


def test_match_captures_one_segment_per_parameter() -> None:
    found = routes.match("GET", "/repositories/acme/internal/simple/demo/")
    assert found is not None and found.route is routes.SIMPLE_PROJECT
    assert found.params == {"storage": "acme", "repo": "internal", "project": "demo"}
    # A parameter never spans a slash, and an empty segment is no parameter.
    empty = routes.match("GET", "/repositories/acme/internal/simple//")
    assert empty is not None and empty.route is routes.REPOSITORY_READS
    assert routes.match("GET", "/repositories/acme//simple/demo/") is None


async def test_the_match_is_left_in_the_scope_for_the_fast_path() -> None:
    scope, app, _kinds = await dispatch("GET", "/repositories/default/local/demo/1.0/demo.whl")

    found = scope[SCOPE_KEY]
    assert SCOPE_KEY == "wheelyard.route"
    assert found.route is routes.DOWNLOAD
    assert found.params == {
        "storage": "default",
        "repo": "local",
        "project": "demo",
        "version": "1.0",
        "filename": "demo.whl",
    }
    assert app is INDEX


@dataclass
class View:
    type: str


class Directory:
    """A `RepositoryDirectory` stand-in: `get` answers from a dict."""

    def __init__(self, views: dict[tuple[str, str], View]) -> None:
        self.views = views

    async def get(self, storage: str, name: str) -> View | None:
        return self.views.get((storage, name))


async def test_kinds_from_reads_the_directory() -> None:
    kind = kinds_from(Directory({("default", "pypi"): View("proxy")}))  # type: ignore[arg-type]

    assert await kind("default", "pypi") == "proxy"
    assert await kind("default", "missing") is None
