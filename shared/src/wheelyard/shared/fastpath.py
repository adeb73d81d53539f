"""The hot read paths as plain ASGI: simple pages and file downloads, for any read service.

Measured on this project, FastAPI's routing and dependency solving cost more CPU than serving a
cached page, so these GET/HEAD requests are answered before the FastAPI router, by the same
handlers the documented routes call. Everything else (redirects for non-normalized names
included) falls through to the FastAPI app unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wheelyard.shared.http import response_for_exception

_SIMPLE = re.compile(r"^/repositories/([^/]+)/([^/]+)/simple/(?:([^/]+)/)?$")
_FILE = re.compile(r"^/repositories/([^/]+)/([^/]+)/([^/]+)/([^/]+)/([^/]+)$")
_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".metadata")

Handler = Callable[[], Awaitable[Response]]


class HotHandlers(Protocol):
    """The three handlers a read service provides (its `handlers` module)."""

    async def simple_root(self, request: Request, storage: str, repo: str) -> Response: ...

    async def simple_project(
        self, request: Request, storage: str, repo: str, project: str
    ) -> Response: ...

    async def download(
        self,
        request: Request,
        storage: str,
        repo: str,
        project: str,
        version: str,
        filename: str,
    ) -> Response: ...


class HotPaths:
    """ASGI middleware answering the hot GET/HEAD routes with `handlers`, errors mapped by
    `wheelyard.shared.http` like everywhere else."""

    def __init__(self, app: ASGIApp, handlers: HotHandlers) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            handler = self._route(Request(scope, receive), scope["path"])
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

    def _route(self, request: Request, path: str) -> Handler | None:
        h = self.handlers
        match = _SIMPLE.match(path)
        if match:
            storage, repo, project = match.groups()
            if project is None:
                return lambda: h.simple_root(request, storage, repo)
            if canonicalize_name(project) == project:  # otherwise the router redirects
                return lambda: h.simple_project(request, storage, repo, project)
            return None
        match = _FILE.match(path)
        if match and match.group(5).endswith(_DIST_SUFFIXES):
            storage, repo, project, version, filename = match.groups()
            return lambda: h.download(request, storage, repo, project, version, filename)
        return None
