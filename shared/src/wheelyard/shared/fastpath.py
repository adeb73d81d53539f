"""The hot read paths, for any read service: the simple-API routes and their plain-ASGI fast
path (simple pages and file downloads).

Measured on this project, FastAPI's routing and dependency solving cost more CPU than serving a
cached page, so these GET/HEAD requests are answered before the FastAPI router, by the same
handlers the documented routes call. Everything else (redirects for non-normalized names
included) falls through to the FastAPI app unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from fastapi import APIRouter
from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wheelyard.shared.http import response_for_exception
from wheelyard.shared.pages import project_name

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


def simple_routes(handlers: HotHandlers) -> APIRouter:
    """The simple-API routes of a read service, answered by its `handlers`: project list,
    project pages, downloads, and the redirects to slash-terminated normalized URLs (which
    are relative, so they keep whatever prefix the client used). Include it after the
    service's own routes: `/{project}/{version}/{filename}` would match anything of that shape.
    """
    router = APIRouter()

    @router.api_route(REPO + "/simple", methods=READ, include_in_schema=False)
    async def simple_root_without_slash() -> Response:
        """Every HTML URL ends in a slash (PEP 503)."""
        return RedirectResponse("simple/", status_code=301)

    @router.api_route(REPO + "/simple/", methods=READ, summary="Simple index: project list")
    async def simple_root(request: Request, storage: str, repo: str) -> Response:
        """PEP 503/691 list of the repository's projects."""
        return await handlers.simple_root(request, storage, repo)

    @router.api_route(REPO + "/simple/{project}", methods=READ, include_in_schema=False)
    async def simple_project_without_slash(project: str) -> Response:
        """Redirect to the normalized, slash-terminated project URL."""
        return RedirectResponse(f"{project_name(project)}/", status_code=301)

    @router.api_route(REPO + "/simple/{project}/", methods=READ, summary="Simple index: project")
    async def simple_project(request: Request, storage: str, repo: str, project: str) -> Response:
        """PEP 503/691 page of one project, negotiated by Accept."""
        return await handlers.simple_project(request, storage, repo, project)

    @router.api_route(REPO + "/{project}/{version}/{filename}", methods=READ, summary="Download")
    async def download(
        request: Request, storage: str, repo: str, project: str, version: str, filename: str
    ) -> Response:
        """A distribution file, or its PEP 658 metadata when the name ends in `.metadata`."""
        return await handlers.download(request, storage, repo, project, version, filename)

    return router


READ = ["GET", "HEAD"]
REPO = "/repositories/{storage}/{repo}"
