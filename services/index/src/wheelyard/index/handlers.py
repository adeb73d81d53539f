"""Handlers of the hot read routes: simple pages and downloads.

Plain functions of (Request, path parameters) -> Response, called both by the FastAPI routes
(which document them in OpenAPI) and by the ASGI fast path `wheelyard.shared.fastpath.HotPaths`.
"""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from wheelyard.index import service
from wheelyard.shared.auth.access import require_read
from wheelyard.shared.context import RequestContext
from wheelyard.shared.db.registry import RepositoryView
from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging.simple import if_none_match_matches
from wheelyard.shared.pages import cache_control, media_of, page_response, project_name
from wheelyard.shared.streaming import serve_blob


async def readable(ctx: RequestContext, storage: str, repo: str) -> RepositoryView:
    """The hosted repository `storage/repo` if the caller may read it."""
    view = await ctx.repository(storage, repo)
    if view is None or view.type != "hosted":
        raise NotFound(f"Repository '{storage}/{repo}' does not exist.")
    require_read(await ctx.principal(), view)
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
        stored = await service.find_file(
            ctx.session, repo=view, project=project, version=version, filename=filename
        )
    etag = f'"{stored.sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control(request, view, immutable=True)}
    if if_none_match_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if request.method == "GET" and ctx.backends.settings.blob_redirect:
        # Bytes straight from object storage: the presigned URL needs no credentials, which
        # clients drop on a cross-host redirect anyway (standards digest §8).
        url = await ctx.backends.blobs.url_for(stored.blob_key, expires_seconds=300)
        if url:
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    return await serve_blob(
        ctx.backends.blobs,
        stored.blob_key,
        size=stored.size,
        method=request.method,
        range_header=request.headers.get("range"),
        headers=headers,
    )
