"""The registry's URL layout: one table of every route a service answers.

The gateway's dispatcher reads it to pick the service for a request, the read services' fast
path reads it to pick a handler before FastAPI's router, and every service declares its FastAPI
routes with the templates here, so a path is spelled exactly once. Builders for the URLs we
put in pages (`repository_path`, `file_path`) live here for the same reason.

Templates use FastAPI's `{name}` syntax; a parameter matches one path segment.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import quote


class Target(enum.Enum):
    """Which service answers a route. `READER` depends on the repository's kind: hosted (and
    unknown) repositories are the index's, proxy and group repositories the proxy-cache's.
    `GATEWAY` routes are answered by the gateway itself (redirects to the web interface)."""

    INDEX = "index"
    UPLOAD = "upload"
    PROXY_CACHE = "proxy-cache"
    READER = "reader"
    GATEWAY = "gateway"


READ = frozenset({"GET", "HEAD"})
WRITE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

REPO = "/repositories/{storage}/{repo}"
API_REPO = "/api/v1/repositories/{storage}/{repo}"
API_RELEASE = API_REPO + "/projects/{project}/versions/{version}"

_PARAM = re.compile(r"\{(\w+)\}")


def _compile(template: str, *, prefix: bool) -> re.Pattern[str]:
    pattern = ""
    last = 0
    for param in _PARAM.finditer(template):
        pattern += re.escape(template[last : param.start()]) + f"(?P<{param.group(1)}>[^/]+)"
        last = param.end()
    pattern += re.escape(template[last:])
    return re.compile("^" + pattern + ("" if prefix else "$"))


@dataclass(frozen=True, slots=True)
class Route:
    """One route: a name, its path templates, the methods it takes and the service behind it.

    `fast` routes are answered by the read services' plain-ASGI fast path (`web.fastpath`);
    `prefix` routes cover every path below the template (the fallback of an area, so that an
    unknown path is answered with a 404 by the service that owns the area).
    """

    name: str
    templates: tuple[str, ...]
    methods: frozenset[str]
    target: Target
    fast: bool = False
    prefix: bool = False

    @property
    def template(self) -> str:
        """The route's main (documented) template."""
        return self.templates[0]


@dataclass(frozen=True, slots=True)
class Match:
    """A route and the path parameters it captured."""

    route: Route
    params: dict[str, str]


def _route(
    name: str,
    templates: str | tuple[str, ...],
    methods: frozenset[str],
    target: Target,
    **flags: bool,
) -> Route:
    if isinstance(templates, str):
        templates = (templates,)
    return Route(name, templates, methods, target, **flags)


# The hot routes first: they are matched in order and most requests are these.
SIMPLE_PROJECT = _route(
    "simple_project",
    # `+simple` is devpi's spelling, which hatch asks to learn which files already exist.
    (REPO + "/simple/{project}/", REPO + "/+simple/{project}/"),
    READ,
    Target.READER,
    fast=True,
)
DOWNLOAD = _route(
    "download", REPO + "/{project}/{version}/{filename}", READ, Target.READER, fast=True
)
SIMPLE_ROOT = _route("simple_root", REPO + "/simple/", READ, Target.READER, fast=True)
SIMPLE_ROOT_REDIRECT = _route("simple_root_redirect", REPO + "/simple", READ, Target.READER)
SIMPLE_PROJECT_REDIRECT = _route(
    "simple_project_redirect", REPO + "/simple/{project}", READ, Target.READER
)
PYPI_PROJECT = _route(
    "pypi_project",
    (REPO + "/pypi/{project}/json", REPO + "/pypi/{project}/json/"),
    READ,
    Target.READER,
)
PYPI_RELEASE = _route(
    "pypi_release",
    (REPO + "/pypi/{project}/{version}/json", REPO + "/pypi/{project}/{version}/json/"),
    READ,
    Target.READER,
)
LEGACY_UPLOAD = _route(
    "legacy_upload",
    tuple(REPO + suffix for suffix in ("/", "", "/legacy", "/legacy/", "/simple", "/simple/")),
    frozenset({"POST"}),
    Target.UPLOAD,
)
RAW_UPLOAD = _route(
    "raw_upload",
    REPO + "/{project}/{version}/{filename}",
    frozenset({"PUT", "POST"}),
    Target.UPLOAD,
)
PROJECT_DETAILS = _route("project_details", API_REPO + "/projects/{project}", READ, Target.READER)
YANK = _route("yank", API_RELEASE + "/yank", frozenset({"POST"}), Target.UPLOAD)
UNYANK = _route("unyank", API_RELEASE + "/unyank", frozenset({"POST"}), Target.UPLOAD)
DELETE_RELEASE = _route("delete_release", API_RELEASE, frozenset({"DELETE"}), Target.UPLOAD)
DELETE_FILE = _route(
    "delete_file", API_RELEASE + "/files/{filename}", frozenset({"DELETE"}), Target.UPLOAD
)
PROJECT_STATUS = _route(
    "project_status", API_REPO + "/projects/{project}/status", frozenset({"PUT"}), Target.UPLOAD
)
EXPIRE_CACHE = _route(
    "expire_cache", API_REPO + "/cache/{project}", frozenset({"DELETE"}), Target.PROXY_CACHE
)
PREFETCH = _route("prefetch", API_REPO + "/prefetch", frozenset({"POST"}), Target.PROXY_CACHE)
PREFETCH_JOB = _route("prefetch_job", API_REPO + "/prefetch/{job}", READ, Target.PROXY_CACHE)
SEARCH = _route("search", "/api/v1/search", READ, Target.INDEX)
# PyPI's legacy XML-RPC API (`search`, `list_packages`), which `pip search` calls.
XMLRPC = _route("xmlrpc", (REPO + "/pypi", REPO + "/pypi/"), frozenset({"POST"}), Target.INDEX)
# The project URLs publishers print after an upload: hatch `<url>/<project>/<version>/`,
# flit `<url>/<project>` (with a doubled slash when the URL ends with one). Each redirects to
# the project's page in the web interface.
PROJECT_PAGE_REDIRECT = _route(
    "project_page_redirect",
    (
        REPO + "/{project}",
        REPO + "/{project}/",
        REPO + "//{project}",
        REPO + "//{project}/",
        REPO + "/{project}/{version}/",
    ),
    READ,
    Target.GATEWAY,
)

# Areas: whatever else lies below these belongs to the service named (which answers 404/405).
REPOSITORY_READS = _route("repository_reads", REPO, READ, Target.READER, prefix=True)
REPOSITORY_WRITES = _route("repository_writes", REPO, WRITE, Target.UPLOAD, prefix=True)
PROJECT_READS = _route("project_reads", API_REPO + "/projects/", READ, Target.READER, prefix=True)
PROJECT_WRITES = _route(
    "project_writes", API_REPO + "/projects/", WRITE, Target.UPLOAD, prefix=True
)
CACHE_AREA = _route(
    "cache_area", API_REPO + "/cache/", READ | WRITE, Target.PROXY_CACHE, prefix=True
)

ROUTES: tuple[Route, ...] = (
    SIMPLE_PROJECT,
    # Before DOWNLOAD, whose template also matches `pypi/<project>/json`.
    PYPI_PROJECT,
    DOWNLOAD,
    SIMPLE_ROOT,
    SIMPLE_ROOT_REDIRECT,
    SIMPLE_PROJECT_REDIRECT,
    PYPI_RELEASE,
    XMLRPC,
    LEGACY_UPLOAD,
    RAW_UPLOAD,
    PROJECT_DETAILS,
    YANK,
    UNYANK,
    DELETE_RELEASE,
    DELETE_FILE,
    PROJECT_STATUS,
    EXPIRE_CACHE,
    PREFETCH,
    PREFETCH_JOB,
    SEARCH,
    # After every read route of a repository: its templates match any one or two segments.
    PROJECT_PAGE_REDIRECT,
    REPOSITORY_READS,
    REPOSITORY_WRITES,
    PROJECT_READS,
    PROJECT_WRITES,
    CACHE_AREA,
)

_COMPILED: tuple[tuple[Route, tuple[re.Pattern[str], ...]], ...] = tuple(
    (route, tuple(_compile(t, prefix=route.prefix) for t in route.templates)) for route in ROUTES
)


def match(method: str, path: str) -> Match | None:
    """The first route (in table order) whose template matches `path` and which takes
    `method`; None for paths no service answers (the gateway's own routes)."""
    for route, patterns in _COMPILED:
        if method not in route.methods:
            continue
        for pattern in patterns:
            found = pattern.match(path)
            if found is not None:
                return Match(route, found.groupdict())
    return None


# -- URLs we emit --------------------------------------------------------------------------------


def repository_path(storage: str, repo: str) -> str:
    """`/repositories/<storage>/<repo>`."""
    return f"/repositories/{quote(storage)}/{quote(repo)}"


def project_files_path(storage: str, repo: str, project: str) -> str:
    """What every file URL of `project` starts with: `/repositories/<s>/<r>/<project>/`."""
    return f"{repository_path(storage, repo)}/{quote(project)}/"


def file_path(storage: str, repo: str, project: str, version: str, filename: str) -> str:
    """Where a file is downloaded: `/repositories/<s>/<r>/<project>/<version>/<filename>`.

    The exact filename is the last segment (pip takes the filename from the URL), percent-
    encoded where needed (`+` of local versions), and there is never a query string.
    """
    return (
        f"{project_files_path(storage, repo, project)}{quote(version, safe='')}/"
        f"{quote(filename, safe='')}"
    )
