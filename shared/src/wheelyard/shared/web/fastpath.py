"""The hot read paths of a read service (simple pages and downloads): their FastAPI routes, and
a plain-ASGI fast path that answers them before FastAPI's router.

Measured on this project, FastAPI's routing and dependency solving cost more CPU than serving a
cached page, so these GET/HEAD requests are answered by the same handlers the documented routes
call, found through the one route table (`wheelyard.shared.routes`). In embedded mode the
gateway has matched the route already and passes the match along in the scope. Everything else
(redirects for non-normalized names included) falls through to the FastAPI app unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from fastapi import APIRouter
from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wheelyard.shared import routes
from wheelyard.shared.web.observe import set_route
from wheelyard.shared.web.pages import project_name
from wheelyard.shared.web.problems import response_for_exception

#: Where the gateway leaves its route match in the scope (embedded mode).
SCOPE_KEY = "wheelyard.route"


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


def route_of(scope: Scope) -> routes.Match | None:
    """The route match of a request: the gateway's when it left one, else matched here."""
    found: routes.Match | None = scope.get(SCOPE_KEY)
    if found is None:
        found = routes.match(scope["method"], scope["path"])
    return found


class HotPaths:
    """ASGI middleware answering the fast routes with `handlers`, errors mapped by
    `wheelyard.shared.web.problems` like everywhere else."""

    def __init__(self, app: ASGIApp, handlers: HotHandlers) -> None:
        self.app = app
        self.handlers: dict[str, Callable[..., Awaitable[Response]]] = {
            routes.SIMPLE_ROOT.name: handlers.simple_root,
            routes.SIMPLE_PROJECT.name: handlers.simple_project,
            routes.DOWNLOAD.name: handlers.download,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in routes.READ:
            found = route_of(scope)
            handler = self._handler(found)
            if handler is not None and found is not None:
                set_route(scope, found.route.name)
                try:
                    response = await handler(Request(scope, receive), **found.params)
                except Exception as exc:
                    mapped = response_for_exception(exc)
                    if mapped is None:
                        raise
                    response = mapped
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _handler(self, found: routes.Match | None) -> Callable[..., Awaitable[Response]] | None:
        if found is None or not found.route.fast:
            return None
        project = found.params.get("project")
        if found.route is routes.SIMPLE_PROJECT and canonicalize_name(project or "") != project:
            return None  # the router redirects to the normalized name
        return self.handlers.get(found.route.name)


def simple_routes(handlers: HotHandlers) -> APIRouter:
    """The simple-API routes of a read service, answered by its `handlers`: project list,
    project pages, downloads, and the redirects to slash-terminated normalized URLs (which
    are relative, so they keep whatever prefix the client used). Include it after the
    service's own routes: the download template would match anything of that shape.
    """
    router = APIRouter()
    read = sorted(routes.READ)

    @router.api_route(routes.SIMPLE_ROOT_REDIRECT.template, methods=read, include_in_schema=False)
    async def simple_root_without_slash() -> Response:
        """Every HTML URL ends in a slash (PEP 503)."""
        return RedirectResponse("simple/", status_code=301)

    @router.api_route(routes.SIMPLE_ROOT.template, methods=read, summary="Simple index: projects")
    async def simple_root(request: Request, storage: str, repo: str) -> Response:
        """PEP 503/691 list of the repository's projects."""
        return await handlers.simple_root(request, storage, repo)

    @router.api_route(
        routes.SIMPLE_PROJECT_REDIRECT.template, methods=read, include_in_schema=False
    )
    async def simple_project_without_slash(project: str) -> Response:
        """Redirect to the normalized, slash-terminated project URL."""
        return RedirectResponse(f"{project_name(project)}/", status_code=301)

    @router.api_route(routes.SIMPLE_PROJECT.template, methods=read, summary="Simple index: project")
    async def simple_project(request: Request, storage: str, repo: str, project: str) -> Response:
        """PEP 503/691 page of one project, negotiated by Accept."""
        return await handlers.simple_project(request, storage, repo, project)

    @router.api_route(routes.DOWNLOAD.template, methods=read, summary="Download")
    async def download(
        request: Request, storage: str, repo: str, project: str, version: str, filename: str
    ) -> Response:
        """A distribution file, or its PEP 658 metadata when the name ends in `.metadata`."""
        return await handlers.download(request, storage, repo, project, version, filename)

    return router
