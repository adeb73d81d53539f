"""Handlers of the hot read routes of proxy and group repositories: pages and downloads.

Plain functions of (Request, path parameters) -> Response, called both by the FastAPI routes
(which document them) and by the ASGI fast path `wheelyard.shared.fastpath.HotPaths`. The
caller's right to read the repository is checked before anything else, so no upstream is
ever contacted for someone who may not read it.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from wheelyard.proxy_cache import service
from wheelyard.proxy_cache.pages import linked_page
from wheelyard.proxy_cache.service import ProxyService
from wheelyard.shared.auth.access import require_read
from wheelyard.shared.context import RequestContext
from wheelyard.shared.db.registry import RepositoryView
from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging.simple import (
    JSON_V1,
    ProjectList,
    ProjectPage,
    etag_for,
    if_none_match_matches,
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from wheelyard.shared.pagecache import CachedPage
from wheelyard.shared.pages import (
    STALE_HEADERS,
    cache_control,
    media_of,
    page_response,
    project_name,
)

KINDS = ("proxy", "group")


def proxy_of(request: Request) -> ProxyService:
    """The process's proxy service."""
    return request.app.state.proxy  # type: ignore[no-any-return]


async def readable(ctx: RequestContext, storage: str, repo: str) -> RepositoryView:
    """The proxy or group repository `storage/repo` if the caller may read it."""
    view = await ctx.repository(storage, repo)
    if view is None or view.type not in KINDS:
        raise NotFound(f"Repository '{storage}/{repo}' does not exist.")
    require_read(await ctx.principal(), view)
    return view


def _render(page: ProjectPage, media: str) -> bytes:
    return render_project_json(page) if media == JSON_V1 else render_project_html(page)


def _digest_serial(version: str) -> int:
    return int.from_bytes(hashlib.blake2s(version.encode(), digest_size=7).digest(), "big")


async def simple_root(request: Request, storage: str, repo: str) -> Response:
    """PEP 503/691 project list: cached proxy projects (and hosted members' for groups)."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        proxy = proxy_of(request)
        projects: ProjectList
        if view.type == "group":
            projects = await service.group_index(ctx, proxy, view)
        else:
            projects = await service.proxy_index(proxy, view)
        media = media_of(request)
        body = render_index_json(projects) if media == JSON_V1 else render_index_html(projects)
        return page_response(request, view, CachedPage(body, etag_for(body)), media)


async def simple_project(request: Request, storage: str, repo: str, project: str) -> Response:
    """PEP 503/691 page of one project, negotiated by Accept; stale pages are marked."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        name = project_name(project)
        if name != project:
            return RedirectResponse(f"../{name}/", status_code=301)
        media = media_of(request)
        proxy = proxy_of(request)
        base = ctx.base_url
        variant = f"{media}|{base}"
        stale = False
        if view.type == "proxy":
            current = await proxy.pages.current(view, name)
            stale = current.stale

            async def render() -> bytes:
                decoded = await proxy.pages.decoded(view, name, current.version)
                return _render(
                    linked_page(decoded, base=base, storage=view.storage, repo=view.name), media
                )

            page = await ctx.pages.page(
                f"proxy:{view.id}:{name}", _digest_serial(current.version), variant, render
            )
        else:
            found = await service.resolve(ctx, proxy, view, name)
            stale = found.proxy is not None and found.proxy[1].stale

            async def render_group() -> bytes:
                return _render(await service.group_page(ctx, proxy, view, name, found), media)

            page = await ctx.pages.page(
                f"group:{view.id}:{name}", found.key(), variant, render_group
            )
        return page_response(
            request, view, page, media, extra_headers=STALE_HEADERS if stale else None
        )


async def download(
    request: Request, storage: str, repo: str, project: str, version: str, filename: str
) -> Response:
    """A distribution file or its PEP 658 metadata (`.metadata`), from the blob store when
    cached, else fetched from the upstream once (see `files`)."""
    proxy = proxy_of(request)
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        name = project_name(project)
        if view.type == "group":
            found = await service.resolve(ctx, proxy, view, name, fresh=False)
            for member, _serial in found.hosted:
                stored = await service.hosted_file(ctx.session, member, name, version, filename)
                if stored is not None:
                    return await _hosted_response(request, proxy, view, stored)
            if found.proxy is None:
                raise NotFound(f"File '{filename}' does not exist in '{view.path}'.")
            source = found.proxy[0]
        else:
            source = view
        upstream_file = await service.proxy_file(proxy, source, name, version, filename)
    headers = {"Cache-Control": cache_control(request, view, immutable=True)}
    if upstream_file.sha256 is not None:
        etag = f'"{upstream_file.sha256}"'
        headers["ETag"] = etag
        if if_none_match_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
    return await proxy.files.response(
        url=upstream_file.url,
        upstream=source.upstreams[upstream_file.source],
        sha256=upstream_file.sha256,
        size=upstream_file.size,
        method=request.method,
        range_header=request.headers.get("range"),
        headers=headers,
    )


async def _hosted_response(
    request: Request, proxy: ProxyService, view: RepositoryView, stored: service.HostedFile
) -> Response:
    etag = f'"{stored.sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control(request, view, immutable=True)}
    if if_none_match_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return await proxy.files.from_store(
        stored.blob_key, stored.size, request.method, request.headers.get("range"), headers
    )
