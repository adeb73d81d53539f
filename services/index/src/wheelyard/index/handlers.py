"""Handlers of the hot read routes: simple pages and downloads.

Plain functions of (Request, path parameters) -> Response, called both by the FastAPI routes
(which document them in OpenAPI) and by the ASGI fast path in `fastpath.py`.
"""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response
from packaging.utils import canonicalize_name
from starlette.requests import Request

from wheelyard.index import service
from wheelyard.shared.auth.access import require_read
from wheelyard.shared.context import RequestContext
from wheelyard.shared.db.registry import RepositoryView
from wheelyard.shared.errors import InvalidInput, NotFound
from wheelyard.shared.packaging.names import validate_project_name
from wheelyard.shared.packaging.simple import content_type_for, if_none_match_matches, negotiate
from wheelyard.shared.pagecache import CachedPage
from wheelyard.shared.streaming import serve_blob


async def readable(ctx: RequestContext, storage: str, repo: str) -> RepositoryView:
    """The hosted repository `storage/repo` if the caller may read it."""
    view = await ctx.repository(storage, repo)
    if view is None or view.type != "hosted":
        raise NotFound(f"Repository '{storage}/{repo}' does not exist.")
    require_read(await ctx.principal(), view)
    return view


def cache_control(request: Request, repo: RepositoryView, *, immutable: bool = False) -> str:
    """Cache-Control for a response from `repo`."""
    # Anything fetched with credentials, or from a private repository, must never be stored by
    # a shared cache (reliability doc §3.4, artifact-keeper PR #3414).
    private = repo.visibility == "private" or "authorization" in request.headers
    if immutable:
        return ("private" if private else "public") + ", max-age=31536000, immutable"
    return "private, no-cache" if private else "public, max-age=0, must-revalidate"


def page_response(request: Request, repo: RepositoryView, page: CachedPage, media: str) -> Response:
    """A simple page with ETag, Vary and 304 handling."""
    headers = {
        "ETag": page.etag,
        "Vary": "Accept, Authorization",
        "Cache-Control": cache_control(request, repo),
    }
    if if_none_match_matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, headers=headers, media_type=content_type_for(media))


def project_name(project: str) -> str:
    """The PEP 503 form of a project path segment; NotFound if no project can have that name.

    Only a name that would be redirected is validated (the hot path stays cheap): a hostile
    segment (`%0d%0aSet-Cookie:...`, markup) gets a 404, never a redirect that echoes it
    (reliability.md §4 A.15). A normalized unknown name is a plain 404 further on.
    """
    name = canonicalize_name(project)
    if name != project:
        try:
            validate_project_name(project)
        except InvalidInput:
            raise NotFound("No project can have that name.") from None
    return name


def media_of(request: Request) -> str:
    """The negotiated media type (PEP 691)."""
    return negotiate(request.headers.get("accept"), request.query_params.get("format"))


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
