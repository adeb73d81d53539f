"""The index's hot paths as plain ASGI: simple pages and file downloads.

Measured on this project, FastAPI's routing and dependency solving cost more CPU than serving a
cached page, so these GET/HEAD requests are answered here, before the FastAPI router, by the
same handlers the routes use. Everything else (redirects for non-normalized names included)
falls through to the FastAPI app unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wheelyard.index import handlers
from wheelyard.shared.http import response_for_exception

_SIMPLE = re.compile(r"^/repositories/([^/]+)/([^/]+)/simple/(?:([^/]+)/)?$")
_FILE = re.compile(r"^/repositories/([^/]+)/([^/]+)/([^/]+)/([^/]+)/([^/]+)$")
_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".metadata")

Handler = Callable[[], Awaitable[Response]]


class IndexFastPath:
    """ASGI middleware answering the hot GET/HEAD routes without FastAPI's router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            handler = _route(Request(scope, receive), scope["path"])
            if handler is not None:
                try:
                    response = await handler()
                except Exception as exc:
                    mapped = response_for_exception(exc)
                    if mapped is None:
                        raise
                    response = mapped
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route(request: Request, path: str) -> Handler | None:
    match = _SIMPLE.match(path)
    if match:
        storage, repo, project = match.groups()
        if project is None:
            return lambda: handlers.simple_root(request, storage, repo)
        if canonicalize_name(project) == project:  # otherwise the router redirects
            return lambda: handlers.simple_project(request, storage, repo, project)
        return None
    match = _FILE.match(path)
    if match and match.group(5).endswith(_DIST_SUFFIXES):
        storage, repo, project, version, filename = match.groups()
        return lambda: handlers.download(request, storage, repo, project, version, filename)
    return None
