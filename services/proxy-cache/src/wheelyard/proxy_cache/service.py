"""The proxy-cache service's per-process core: `ProxyService` answers pages and files of proxy
and group repositories, from the stores when it can and from the upstream when it must.

A request walks straight through: the handler checks who may read the repository, then
`ProxyService.page`/`open_file` take it to the page cache, the hosted members, the blob store
or the upstream, and return the response.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.responses import Response

from wheelyard.proxy_cache import groups
from wheelyard.proxy_cache.files import ProxyFiles
from wheelyard.proxy_cache.links import linked_page, version_of
from wheelyard.proxy_cache.pages import ProxyPages
from wheelyard.proxy_cache.upstream import UpstreamClient
from wheelyard.shared.domain.hosted import find_file, same_version
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging.simple.model import JSON_V1, ProjectList, ProjectPage
from wheelyard.shared.packaging.simple.render_html import render_index_html, render_project_html
from wheelyard.shared.packaging.simple.render_json import render_index_json, render_project_json
from wheelyard.shared.web.conditional import etag_for
from wheelyard.shared.web.context import RequestContext
from wheelyard.shared.web.pagecache import CachedPage
from wheelyard.shared.web.pages import cache_control
from wheelyard.shared.web.runtime import Runtime
from wheelyard.shared.web.streaming import stored_file_response


def _render(page: ProjectPage, media: str) -> bytes:
    return render_project_json(page) if media == JSON_V1 else render_project_html(page)


def _digest_serial(version: str) -> int:
    return int.from_bytes(hashlib.blake2s(version.encode(), digest_size=7).digest(), "big")


class ProxyService:
    """Everything the proxy-cache service keeps per process: the upstream client (with its
    circuit breakers), proxy pages and proxy files."""

    def __init__(self, runtime: Runtime) -> None:
        backends = runtime.backends
        self.runtime = runtime
        self.client = UpstreamClient()
        self.pages = ProxyPages(
            sessions=backends.sessions,
            cache=backends.cache,
            client=self.client,
            default_ttl=backends.settings.pypi_proxy_ttl,
        )
        self.files = ProxyFiles(
            blobs=backends.blobs,
            cache=backends.cache,
            client=self.client,
            spool_dir=Path(backends.settings.data_dir) / "proxy-spool",
        )

    async def aclose(self) -> None:
        """Stop fetches and close upstream connections."""
        await self.files.aclose()
        await self.client.aclose()

    # -- pages ----------------------------------------------------------------------------------

    async def project_page(
        self, ctx: RequestContext, view: RepositoryView, name: str, media: str
    ) -> tuple[CachedPage, bool]:
        """The rendered page of `name` (normalized) in proxy or group `view` as `media`, and
        whether it is served stale (the upstream could not be asked)."""
        base = ctx.base_url
        variant = f"{media}|{base}"
        if view.type == "proxy":
            current = await self.pages.current(view, name)

            async def render() -> bytes:
                decoded = await self.pages.decoded(view, name, current.version)
                return _render(
                    linked_page(decoded, base=base, storage=view.storage, repo=view.name), media
                )

            page = await ctx.pages.page(
                f"proxy:{view.id}:{name}", _digest_serial(current.version), variant, render
            )
            return page, current.stale
        found = await groups.resolve(ctx, self.pages, view, name)

        async def render_group() -> bytes:
            return _render(await groups.group_page(ctx, self.pages, view, name, found), media)

        page = await ctx.pages.page(f"group:{view.id}:{name}", found.key(), variant, render_group)
        return page, found.proxy is not None and found.proxy[1].stale

    async def index_page(self, ctx: RequestContext, view: RepositoryView, media: str) -> CachedPage:
        """The rendered project list of proxy or group `view`: cached proxy projects (and the
        hosted members' projects for a group)."""
        projects: ProjectList
        if view.type == "group":
            projects = await groups.group_index(ctx, self.pages, view)
        else:
            names = await self.pages.cached_projects(view)
            projects = ProjectList(projects=tuple((n, n) for n in names))
        body = render_index_json(projects) if media == JSON_V1 else render_index_html(projects)
        return CachedPage(body, etag_for(body))

    # -- files ----------------------------------------------------------------------------------

    async def open_file(
        self,
        ctx: RequestContext,
        view: RepositoryView,
        name: str,
        version: str,
        filename: str,
    ) -> Response:
        """The response for `/<name>/<version>/<filename>` (a distribution or its `.metadata`)
        of proxy or group `view`: a hosted member's file, a cached blob, or the upstream's
        bytes fetched once and verified (see `files`). NotFound unless a readable member holds
        the file or the upstream page lists it under exactly that path."""
        request = ctx.request
        control = cache_control(request, view, immutable=True)
        source = view
        if view.type == "group":
            found = await groups.resolve(ctx, self.pages, view, name, fresh=False)
            for member, _serial in found.hosted:
                stored = await find_file(ctx.session, member.id, name, version, filename)
                if stored is not None:
                    return await stored_file_response(
                        request,
                        ctx.backends.blobs,
                        key=stored.blob_key,
                        size=stored.size,
                        sha256=stored.sha256,
                        cache_control=control,
                        redirect=ctx.backends.settings.blob_redirect,
                    )
            if found.proxy is None:
                raise NotFound(f"File '{filename}' does not exist in '{view.path}'.")
            source = found.proxy[0]
        metadata = filename.endswith(".metadata")
        real_name = filename.removesuffix(".metadata") if metadata else filename
        listed, upstream_index = await self.pages.find_file(source, name, real_name)
        if not same_version(version, version_of(real_name)) or (
            metadata and not listed.has_core_metadata
        ):
            raise NotFound(f"File '{filename}' does not exist in '{view.path}'.")
        if not 0 <= upstream_index < len(source.upstreams):
            upstream_index = 0
        url = listed.upstream_url or listed.url
        return await self.files.response(
            request,
            url=url + ".metadata" if metadata else url,
            upstream=source.upstreams[upstream_index],
            sha256=listed.core_metadata_sha256 if metadata else listed.sha256,
            size=None if metadata else listed.size,
            cache_control=control,
            redirect=ctx.backends.settings.blob_redirect,
        )
