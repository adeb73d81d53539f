"""Handlers of the hot read routes: simple pages and downloads.

Plain functions of (Request, path parameters) -> Response, called both by the FastAPI routes
(which document them in OpenAPI) and by the ASGI fast path `wheelyard.shared.web.fastpath.HotPaths`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from wheelyard.index import service
from wheelyard.shared.auth.access import missing, require_read
from wheelyard.shared.domain.policy import chain_of
from wheelyard.shared.domain.refusals import stored_file_decision
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound
from wheelyard.shared.web.context import RequestContext
from wheelyard.shared.web.pages import cache_control, media_of, page_response, project_name
from wheelyard.shared.web.streaming import stored_file_response


async def readable(ctx: RequestContext, storage: str, repo: str) -> RepositoryView:
    """The hosted repository `storage/repo` if the caller may read it."""
    view = await ctx.repository(storage, repo)
    principal = await ctx.principal()
    if view is None or view.type != "hosted":
        raise missing(principal, f"{storage}/{repo}")
    require_read(principal, view)
    return view


async def simple_root(request: Request, storage: str, repo: str) -> Response:
    """PEP 503/691 list of the repository's projects."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        media = media_of(request)
        page = await service.simple_index(ctx.session_source, ctx.pages, repo=view, media=media)
        return page_response(request, view, page, media)


async def simple_project(request: Request, storage: str, repo: str, project: str) -> Response:
    """PEP 503/691 page of one project, negotiated by Accept."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        name = project_name(project)
        if name != project:
            return RedirectResponse(f"../{name}/", status_code=301)
        media = media_of(request)
        page = await service.simple_project(
            ctx.session_source, ctx.pages, repo=view, name=name, media=media, base=ctx.base_url
        )
        return page_response(request, view, page, media)


async def download(
    request: Request, storage: str, repo: str, project: str, version: str, filename: str
) -> Response:
    """A distribution file, or its PEP 658 metadata when the name ends in `.metadata`."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        stored = await ctx.hosted_file(view, project, version, filename)
        if stored is not None and (view.policy is not None or stored.status == "quarantined"):
            decision = stored_file_decision(chain_of(view.policy), stored)
            await ctx.refuse_unless_served(decision, view, stored.project, filename)
    if stored is None:
        raise NotFound(f"File '{filename}' does not exist in '{view.path}'.")
    return await stored_file_response(
        request,
        ctx.backends.blobs,
        key=stored.blob_key,
        size=stored.size,
        sha256=stored.sha256,
        cache_control=cache_control(request, view, immutable=True),
        redirect=ctx.backends.settings.blob_redirect,
        pages=ctx.pages,
    )
