"""Handlers of the hot read routes of proxy and group repositories: pages and downloads.

Plain functions of (Request, path parameters) -> Response, called both by the FastAPI routes
(which document them) and by the ASGI fast path `wheelyard.shared.web.fastpath.HotPaths`. The
caller's right to read the repository is checked before anything else, so no upstream is
ever contacted for someone who may not read it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from wheelyard.proxy_cache.service import ProxyService
from wheelyard.shared.auth.access import missing, require_read
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.web.context import RequestContext
from wheelyard.shared.web.pages import STALE_HEADERS, media_of, page_response, project_name

KINDS = ("proxy", "group")


def proxy_of(request: Request) -> ProxyService:
    """The process's proxy service."""
    return request.app.state.proxy


async def readable(ctx: RequestContext, storage: str, repo: str) -> RepositoryView:
    """The proxy or group repository `storage/repo` if the caller may read it."""
    view = await ctx.repository(storage, repo)
    principal = await ctx.principal()
    if view is None or view.type not in KINDS:
        raise missing(principal, f"{storage}/{repo}")
    require_read(principal, view)
    return view


async def simple_root(request: Request, storage: str, repo: str) -> Response:
    """PEP 503/691 project list: cached proxy projects (and hosted members' for groups)."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        media = media_of(request)
        page = await proxy_of(request).index_page(ctx, view, media)
        return page_response(request, view, page, media)


async def simple_project(request: Request, storage: str, repo: str, project: str) -> Response:
    """PEP 503/691 page of one project, negotiated by Accept; stale pages are marked."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        name = project_name(project)
        if name != project:
            return RedirectResponse(f"../{name}/", status_code=301)
        media = media_of(request)
        page, stale = await proxy_of(request).project_page(ctx, view, name, media)
        return page_response(
            request, view, page, media, extra_headers=STALE_HEADERS if stale else None
        )


async def download(
    request: Request, storage: str, repo: str, project: str, version: str, filename: str
) -> Response:
    """A distribution file or its PEP 658 metadata (`.metadata`), from a hosted member or the
    blob store when stored, else fetched from the upstream once."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        return await proxy_of(request).open_file(
            ctx, view, project_name(project), version, filename
        )
