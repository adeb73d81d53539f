"""The proxy-cache service's per-process core: `ProxyService` answers pages and files of proxy
and group repositories, from the stores when it can and from the upstream when it must.

A request walks straight through: the handler checks who may read the repository, then
`ProxyService.page`/`open_file` take it to the page cache, the hosted members, the blob store
or the upstream, and return the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.responses import Response

from wheelyard.proxy_cache import groups
from wheelyard.proxy_cache.files import ProxyFiles, Wanted
from wheelyard.proxy_cache.health import BreakerReports
from wheelyard.proxy_cache.links import linked_page
from wheelyard.proxy_cache.netroutes import NetRoutes, ProxySettings
from wheelyard.proxy_cache.pages import ProxyPages, proxy_list_scope
from wheelyard.proxy_cache.pypi_api import PypiApi
from wheelyard.proxy_cache.readahead import sure_dependencies
from wheelyard.proxy_cache.sweeper import Sweeper
from wheelyard.proxy_cache.upstream import UpstreamClient
from wheelyard.shared.backends import Backends
from wheelyard.shared.db.models import utcnow
from wheelyard.shared.domain import prefetch_jobs
from wheelyard.shared.domain.hosted import hosted_anywhere, same_version
from wheelyard.shared.domain.policy import (
    Chain,
    Decision,
    chain_of,
    decide,
    for_download,
    page_variant,
    quarantined,
    screen_page,
)
from wheelyard.shared.domain.refusals import stored_file_decision
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound, WheelyardError
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import JSON_V1, ProjectList, ProjectPage, SimpleFile
from wheelyard.shared.packaging.simple.render_html import render_index_html, render_project_html
from wheelyard.shared.packaging.simple.render_json import render_index_json, render_project_json
from wheelyard.shared.storage import blob_key_for
from wheelyard.shared.web.context import RequestContext
from wheelyard.shared.web.pagecache import CachedPage, PageCache
from wheelyard.shared.web.pages import cache_control
from wheelyard.shared.web.streaming import read_whole, stored_file_response

log = logging.getLogger(__name__)
#: How often expired negative entries are purged from the database.
PURGE_EVERY = 300.0
#: Read-aheads under way at most (`readahead`): past that a cold page reads nothing ahead, so
#: a burst of cold pages never queues background fetches without bound.
READ_AHEAD_AT_ONCE = 16
#: Core metadata longer than this is not read for dependencies to read ahead.
METADATA_READ_BYTES = 1024 * 1024


#: Pages with more files than this are rendered without the per-file fragment memo.
MEMO_FILES = 2000


def _render(page: ProjectPage, media: str, memo: bool) -> bytes:
    if media == JSON_V1:
        return render_project_json(page, memo=memo)
    return render_project_html(page, memo=memo)


def _render_screened(
    build: Callable[[], ProjectPage], chain: Chain, media: str, memo: bool
) -> bytes:
    return _render(screen_page(build, chain, datetime.now(UTC)), media, memo)


async def _render_off_loop(page: ProjectPage, media: str, files: int) -> bytes:
    # A proxied page can have 100,000 files: rendering it (and reading its files from the
    # stored row) takes long enough that it must not stall the event loop.
    return await to_thread.run_sync(_render, page, media, files <= MEMO_FILES)


class _Refused(Exception):
    """The repository's rules would not serve a file read ahead: it is not fetched."""


async def _refuse_quietly(filename: str, decision: Decision) -> None:
    if not for_download(decision, filename).served:
        raise _Refused(decision.rule)


def _listed_size(found: tuple[SimpleFile, int]) -> int:
    listed = found[0]
    text = (listed.filename, listed.url, listed.upstream_url, listed.requires_python, listed.yanked)
    return 600 + sum(len(str(part)) for part in text)


def _digest_serial(version: str) -> int:
    return int.from_bytes(hashlib.blake2s(version.encode(), digest_size=7).digest(), "big")


class ProxyService:
    """Everything the proxy-cache service keeps per process: the upstream client (with its
    circuit breakers), proxy pages and proxy files."""

    def __init__(self, backends: Backends, pages: PageCache) -> None:
        """`pages`: the process's page cache (rendered pages, and the records of hot files)."""
        settings = backends.settings
        # One hook for the breaker's changes: the metric and the web interface's record.
        reports = BreakerReports()
        self.client = UpstreamClient(
            NetRoutes(
                ca_bundle=settings.pypi_proxy_ca_bundle,
                proxies=ProxySettings(
                    https_proxy=settings.https_proxy,
                    http_proxy=settings.http_proxy,
                    no_proxy=settings.no_proxy,
                ),
            ),
            on_breaker_change=reports,
        )
        self.pages = ProxyPages(
            sessions=backends.sessions,
            cache=backends.cache,
            client=self.client,
            default_ttl=backends.settings.pypi_proxy_ttl,
            reports=reports,
            page_cache=pages,
            read_ahead=self._read_ahead if settings.pypi_proxy_read_ahead else None,
        )
        self.files = ProxyFiles(
            blobs=backends.blobs,
            cache=backends.cache,
            client=self.client,
            spool_dir=Path(backends.settings.data_dir) / "proxy-spool",
            sessions=backends.sessions,
            pages=pages,
        )
        self.pypi = PypiApi(self.pages, self.client)
        self.sweeper = Sweeper(backends, self.files.stamps)
        self._purger: asyncio.Task[None] | None = None
        #: Pre-fetch jobs and read-aheads this process runs (kept referenced until they end).
        self.jobs: set[asyncio.Task[None]] = set()
        self._reading_ahead = 0

    def start(self) -> None:
        """Start the background work: the purge of expired negative entries, the writes of
        download times, the storage sweep."""
        self._purger = asyncio.create_task(self._purge_forever(), name="proxy-negative-purge")
        self.files.stamps.start()
        self.sweeper.start()

    async def _purge_forever(self) -> None:
        while True:
            try:
                purged = await self.pages.purge_negatives()
                if purged:
                    log.info("purged %d expired negative proxy page entries", purged)
                jobs = await prefetch_jobs.purge(
                    self.pages.sessions, utcnow() - prefetch_jobs.KEEP_FINISHED
                )
                if jobs:
                    log.info("purged %d finished pre-fetch jobs", jobs)
            except Exception:  # the database may be down for a while: try again later
                log.warning("purging negative proxy page entries failed", exc_info=True)
            await asyncio.sleep(PURGE_EVERY)

    async def aclose(self) -> None:
        """Stop fetches and close upstream connections."""
        await self.sweeper.aclose()
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        for job in list(self.jobs):
            job.cancel()
        if self.jobs:
            await asyncio.wait(self.jobs, timeout=5)
        await self.files.aclose()
        await self.client.aclose()

    def start_job(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run background job `work` in this process until it ends or the service stops."""
        task = asyncio.create_task(work, name=name)
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)
        return task

    def _read_ahead(self, repo: RepositoryView, name: str, wheel: SimpleFile) -> None:
        """Fetch the `.metadata` of `wheel`, listed on the page of `name` in proxy repository
        `repo` just fetched, then the pages it requires (`readahead`), in the background."""
        filename = wheel.filename + ".metadata"
        work = partial(self._fetch_ahead, repo, name, wheel, filename)
        self._start_ahead(f"{filename} in {repo.path}", work)

    def _start_ahead(self, what: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run read-ahead `work` as a job unless `READ_AHEAD_AT_ONCE` are under way (then it
        is skipped: the installer asks itself). Nobody waits for it, so its failures are
        logged (`what` names it), never raised: a client that asks gets the reason itself."""
        if self._reading_ahead >= READ_AHEAD_AT_ONCE:
            return
        self._reading_ahead += 1

        async def run() -> None:
            try:
                await work()
            except (WheelyardError, _Refused) as exc:
                log.debug("no read-ahead of %s: %s", what, exc)
            except Exception:
                log.warning("read-ahead of %s failed", what, exc_info=True)

        task = self.start_job(run(), name=f"read-ahead {what}")
        # On the task, not in `run`: a job cancelled before its first step gives its turn back.
        task.add_done_callback(lambda _done: self._ahead_done())

    def _ahead_done(self) -> None:
        self._reading_ahead -= 1

    async def _fetch_ahead(
        self, repo: RepositoryView, name: str, wheel: SimpleFile, filename: str
    ) -> None:
        wanted = await self.locate(
            repo,
            name,
            listed_version(wheel.filename),
            filename,
            chain=chain_of(repo.policy),
            check=partial(_refuse_quietly, filename),
        )
        await self.files.fetch(wanted)
        assert wanted.sha256 is not None  # fetch raised otherwise
        key = blob_key_for(wanted.sha256)
        stored = await self.files.blobs.stat(key)
        if stored is None or stored.size > METADATA_READ_BYTES:
            return
        # Kept in memory when small, as serving it would: the installer's request is next.
        metadata = await read_whole(self.files.blobs, key, stored.size, self.files.pages)
        # Parsed off the loop: core metadata carries the project's whole description.
        for dependency in await to_thread.run_sync(sure_dependencies, metadata):
            self._start_ahead(
                f"the page of {dependency} in {repo.path}",
                partial(self._page_ahead, repo, dependency),
            )

    async def _page_ahead(self, repo: RepositoryView, name: str) -> None:
        """Make the page of `name` in proxy repository `repo` current (a cold one is fetched,
        and reads ahead in turn), unless a hosted repository holds the name."""
        async with self.pages.sessions() as session:
            if await hosted_anywhere(session, name):
                # A group never asks the upstream for a name one of its hosted members
                # holds (dependency confusion); reading ahead must not either.
                return
        await self.pages.current(repo, name)

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
            chain = chain_of(view.policy)

            async def render() -> bytes:
                content = await self.pages.content(view, name, current)
                if chain:
                    return await to_thread.run_sync(
                        _render_screened,
                        lambda: linked_page(
                            content, base=base, storage=view.storage, repo=view.name
                        ),
                        chain,
                        media,
                        content.count <= MEMO_FILES,
                    )
                page = linked_page(content, base=base, storage=view.storage, repo=view.name)
                return await _render_off_loop(page, media, content.count)

            variant += page_variant(chain, time.time())
            page = await ctx.pages.page(
                f"proxy:{view.id}:{name}", _digest_serial(current.version), variant, render
            )
            return page, current.stale
        found = await groups.resolve(ctx, self.pages, view, name)
        variant += page_variant(groups.policies(view, found), time.time())

        async def render_group() -> bytes:
            page, files = await groups.group_page(ctx, self.pages, view, name, found)
            return await _render_off_loop(page, media, files)

        page = await ctx.pages.page(f"group:{view.id}:{name}", found.key(), variant, render_group)
        return page, found.proxy is not None and found.proxy[1].stale

    async def index_page(self, ctx: RequestContext, view: RepositoryView, media: str) -> CachedPage:
        """The rendered project list of proxy or group `view`: cached proxy projects (and the
        hosted members' projects for a group), rendered once per change of what it lists
        (see `ProxyPages.list_serial` and `groups.index_key`)."""

        def render(projects: ProjectList) -> bytes:
            return render_index_json(projects) if media == JSON_V1 else render_index_html(projects)

        if view.type == "group":
            members = await groups.readable_members(ctx, view)

            async def render_group() -> bytes:
                return render(await groups.group_index(ctx, self.pages, members))

            key = await groups.index_key(ctx, self.pages, members)
            return await ctx.pages.page(f"group-list:{view.id}", key, media, render_group)

        async def render_proxy() -> bytes:
            names = await self.pages.cached_projects(view)
            return render(ProjectList(projects=tuple((n, n) for n in names)))

        serial = await self.pages.list_serial(view)
        return await ctx.pages.page(proxy_list_scope(view.id), serial, media, render_proxy)

    # -- files ----------------------------------------------------------------------------------

    async def _listed(
        self, repo: RepositoryView, name: str, filename: str
    ) -> tuple[SimpleFile, int]:
        """`filename` as the stored page of `name` lists it, and the index of the upstream the
        page came from (`ProxyPages.find_file`), kept in memory per page version: a hot file
        is looked up without reading the stored page again."""
        current = await self.pages.current(repo, name, fresh=False)

        async def find() -> tuple[SimpleFile, int]:
            return await self.pages.find_file(repo, name, filename)

        found = await self.files.pages.derived(
            f"proxy:{repo.id}:{name}",
            _digest_serial(current.version),
            f"file:{filename}",
            find,
            _listed_size,
        )
        assert found is not None  # find() raises NotFound rather than returning nothing
        return found

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
        group = view.policy if view.type == "group" else None
        if view.type == "group":
            found = await groups.resolve(ctx, self.pages, view, name, fresh=False)
            for member, _serial in found.hosted:
                stored = await ctx.hosted_file(member, name, version, filename)
                if stored is not None:
                    decision = stored_file_decision(chain_of(member.policy, group), stored)
                    await ctx.refuse_unless_served(decision, view, name, filename)
                    return await stored_file_response(
                        request,
                        ctx.backends.blobs,
                        key=stored.blob_key,
                        size=stored.size,
                        sha256=stored.sha256,
                        cache_control=control,
                        redirect=ctx.backends.settings.blob_redirect,
                        pages=ctx.pages,
                    )
            if found.proxy is None:
                raise NotFound(f"File '{filename}' does not exist in '{view.path}'.")
            source = found.proxy[0]

        async def refuse_unless_served(decision: Decision) -> None:
            await ctx.refuse_unless_served(decision, view, name, filename)

        wanted = await self.locate(
            source,
            name,
            version,
            filename,
            shown_as=view,
            chain=chain_of(source.policy, group),
            check=refuse_unless_served,
        )
        return await self.files.response(
            request, wanted, cache_control=control, redirect=ctx.backends.settings.blob_redirect
        )

    async def locate(
        self,
        source: RepositoryView,
        name: str,
        version: str,
        filename: str,
        *,
        shown_as: RepositoryView | None = None,
        chain: Chain = (),
        check: Callable[[Decision], Awaitable[None]] | None = None,
    ) -> Wanted:
        """Where proxy repository `source`'s upstream serves `/<name>/<version>/<filename>`
        (a distribution or its `.metadata`) and what its bytes must be, from the project page
        (refreshed only when it does not list the file). NotFound (naming `shown_as`, the
        repository the caller asked) unless the page lists the file under exactly that path.

        `check`, when given, is awaited with the supply-chain decision on the file (the rules
        `chain` of the caller's view, and a quarantined upstream project) before anything is
        fetched; it raises to refuse."""
        shown = (shown_as or source).path
        metadata = filename.endswith(".metadata")
        real_name = filename.removesuffix(".metadata") if metadata else filename
        try:
            listed, upstream_index = await self._listed(source, name, real_name)
        except NotFound:
            # A quarantined upstream project lists no files: say why rather than "missing".
            if check is not None and await self.pages.status(source, name) == "quarantined":
                await check(quarantined("upstream"))
            raise
        if not same_version(version, listed_version(real_name)) or (
            metadata and not listed.has_core_metadata
        ):
            raise NotFound(f"File '{filename}' does not exist in '{shown}'.")
        if check is not None and chain:
            await check(
                decide(
                    chain, name, listed_version(real_name), listed.listed_time, datetime.now(UTC)
                )
            )
        if not 0 <= upstream_index < len(source.upstreams):
            upstream_index = 0
        url = listed.upstream_url or listed.url
        return Wanted(
            repository_id=source.id,
            project=name,
            filename=filename,
            url=url + ".metadata" if metadata else url,
            upstream=source.upstreams[upstream_index],
            sha256=listed.core_metadata_sha256 if metadata else listed.sha256,
            size=None if metadata else listed.size,
            upload_time=listed.upload_time,
        )
