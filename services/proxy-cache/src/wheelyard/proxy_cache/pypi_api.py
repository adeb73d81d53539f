"""The PyPI JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`) of proxy and
group repositories, answered the way their simple pages are:

- a proxy repository asks its upstream's own JSON API, derived from the upstream's simple URL
  (`https://pypi.org/simple/` -> `https://pypi.org/pypi/<project>/json`); when the upstream has
  none (its URL does not end in `/simple/`, it answers 404 or fails) the document is built from
  the stored simple page. The project must be on the simple page first, so a document never
  lists a file that cannot be downloaded through us;
- a group answers like its simple page (`groups.resolve`): a name held by a hosted member
  comes from the database (every hosted member with it, in member order), the upstream only when
  the group allows it; any other name from the first proxy member that knows it;
- every file URL points through the repository asked (never at the upstream), and only what we
  understand of the upstream's document is re-emitted (sanitised, re-encoded by us).

Documents that come from an upstream are cached (the repository's page TTL); those with hosted
files are rendered from the database on each request, like the index service does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from anyio import to_thread

from wheelyard.proxy_cache import groups
from wheelyard.proxy_cache.pages import ProxyPages
from wheelyard.proxy_cache.pypi_documents import (
    Document,
    UrlFor,
    document_from_page,
    read_upstream_document,
)
from wheelyard.proxy_cache.upstream import UpstreamClient
from wheelyard.shared.domain.hosted import find_project, release_infos
from wheelyard.shared.domain.policy import Chain, chain_of, page_variant
from wheelyard.shared.domain.proxied import PageContent
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.routes import file_path, repository_path
from wheelyard.shared.web.context import RequestContext


def upstream_json_url(simple_url: str, name: str, version: str | None) -> str | None:
    """The upstream's JSON API URL for `name` (and `version`), or None when its simple URL does
    not end in `/simple/` (then it has no JSON API we can find)."""
    parts = urlsplit(simple_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/simple") and path != "simple":
        return None
    root = path[: -len("simple")] or "/"
    tail = f"pypi/{quote(name)}/" + (f"{quote(version, safe='')}/" if version else "") + "json"
    return urlunsplit((parts.scheme, parts.netloc, root + tail, "", ""))


# -- answering ----------------------------------------------------------------------------------


class PypiApi:
    """JSON API documents of proxy and group repositories (see the module docstring)."""

    def __init__(self, pages: ProxyPages, client: UpstreamClient) -> None:
        self.pages = pages
        self.client = client

    async def document(
        self, ctx: RequestContext, view: RepositoryView, name: str, version: str | None
    ) -> bytes:
        """The rendered document of `name` (normalized), or of its `version`, in `view`."""
        base = ctx.base_url
        project_url = f"{base}{repository_path(view.storage, view.name)}/pypi/{name}/"

        def url_for(file_version: str, filename: str) -> str:
            return base + file_path(view.storage, view.name, name, file_version, filename)

        # From an upstream: a proxy's own, or a group's first proxy when no hosted member
        # holds the project (a hosted name shadows the upstream).
        upstream_source: RepositoryView | None = None
        if view.type == "proxy":
            upstream_source, chain = view, chain_of(view.policy)
        else:
            found = await groups.resolve(ctx, self.pages, view, name)
            if not found.hosted:
                assert found.proxy is not None
                upstream_source = found.proxy[0]
                chain = chain_of(upstream_source.policy, view.policy)
        if upstream_source is not None:
            source = upstream_source
            return await self._cached(
                ctx,
                view,
                name,
                version,
                base,
                page_variant(chain, time.time()),
                lambda: self._proxied(source, name, version, url_for, chain),
            )
        document: Document | None = None
        for member, serial in found.hosted:
            ref = await find_project(ctx.session, member.id, name)
            if ref is None:
                continue
            releases = await release_infos(
                ctx.session, ref, url_for, chain_of(member.policy, view.policy)
            )
            if document is None:
                document = Document(name=ref.display_name, releases=[])
            document.merge(releases)
            document.last_serial = max(document.last_serial, serial)
        if document is None:
            raise NotFound(f"Project '{name}' does not exist in '{view.path}'.")
        if found.proxy is not None:
            proxy = found.proxy[0]
            upstream = await self._proxied(
                proxy, name, version, url_for, chain_of(proxy.policy, view.policy)
            )
            document.merge(upstream.releases)
            document.last_serial = max(document.last_serial, upstream.last_serial)
        return document.render(version, project_url)

    async def _cached(
        self,
        ctx: RequestContext,
        view: RepositoryView,
        name: str,
        version: str | None,
        base: str,
        rules: str,
        build: Callable[[], Any],
    ) -> bytes:
        ttl = self.pages.ttl(view)
        # `rules`: the supply-chain rules' `page_variant` (a document depends on them too).
        variant = hashlib.blake2s(
            f"{base}|{version or ''}{rules}".encode(), digest_size=8
        ).hexdigest()
        key = f"pypi-json:{view.id}:{name}:{variant}"
        cache = ctx.backends.cache
        hit = await cache.get(key) if ttl > 0 else None
        if hit is not None:
            return hit
        document: Document = await build()
        project_url = f"{base}{repository_path(view.storage, view.name)}/pypi/{name}/"
        body = document.render(version, project_url)
        if ttl > 0:
            await cache.set(key, body, ttl=ttl)
        return body

    async def _proxied(
        self,
        proxy: RepositoryView,
        name: str,
        version: str | None,
        url_for: UrlFor,
        chain: Chain = (),
    ) -> Document:
        """The document of `name` from proxy repository `proxy`'s upstream, or built from its
        stored simple page, with only the files the rules `chain` serve. NotFound when the
        simple page does not know the project."""
        current = await self.pages.current(proxy, name, fresh=False)
        content = await self.pages.content(proxy, name, current)
        document = await self._unscreened(proxy, name, version, url_for, content)
        if chain:
            # A file's age is what the simple page says (the upstream's upload time, else when
            # this repository first listed it), so that the document and the downloads agree.
            times = await to_thread.run_sync(
                lambda: {f.filename: f.listed_time for f in content.files()}
            )
            document.screen(chain, name, datetime.now(UTC), times)
        return document

    async def _unscreened(
        self,
        proxy: RepositoryView,
        name: str,
        version: str | None,
        url_for: UrlFor,
        content: PageContent,
    ) -> Document:
        if content.row.head.get("status") == "quarantined":
            # PEP 792: a quarantined project offers no files, whatever its JSON API says.
            return await to_thread.run_sync(document_from_page, content, url_for)
        upstream = proxy.upstreams[content.row.source] if proxy.upstreams else None
        url = upstream_json_url(upstream.url, name, version) if upstream else None
        if upstream is not None and url is not None:
            try:
                result = await self.client.fetch_document(
                    upstream, url, {"Accept": "application/json"}
                )
            except UpstreamError:
                result = None  # fall back on the stored simple page
            if result is not None:
                try:
                    if result.status == 200:
                        document: Document = await to_thread.run_sync(
                            read_upstream_document, result.body, url_for, name
                        )
                        if document.releases:
                            return document
                finally:
                    result.close()
        return await to_thread.run_sync(document_from_page, content, url_for)
