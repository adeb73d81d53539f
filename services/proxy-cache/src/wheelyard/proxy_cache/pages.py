"""Proxy project pages: freshness, revalidation, persistence, stale serving, negative entries.

The state of a page (which version of its data is current, when the upstream last confirmed
it, whether it was a 404) lives in the cache under one small key, so a fresh page costs one
cache read and no database session; the data itself lives in `proxy_pages` (see
`wheelyard.shared.domain.proxied`, shared with the web interface) and is read from there, as a
stream, whenever a page is rendered (rendered pages are cached by the page cache) or a cold
file is looked up. No decoded page is kept in memory: a process that served a hundred pages of
100,000 files is no bigger than one that served one.

Refreshing a page:
- at most one upstream fetch per (repository, project) at a time: single-flight in the
  process, and a cache lock across processes; whoever waits reads the stored page afterwards;
- the upstream's body is spooled to a temporary file and parsed as a stream in a worker
  thread, each file compressed into the stored row as it is read;
  a request that already has a copy to serve does not wait for someone else's refresh;
- stale pages are revalidated with If-None-Match / If-Modified-Since (304 keeps the body);
- upstreams are tried in order, the first that knows the project wins; a 404 from all of
  them is stored as a negative entry for `NEGATIVE_TTL` seconds, and purged from the database
  after `NEGATIVE_PURGE_AFTER` (`purge_negatives`);
- when the upstream fails (timeout, 5xx, unreachable, open circuit) the last good page is
  served, marked stale; without one the error is raised (502, or 504 for a timeout); the
  breaker's changes go to the metrics and the web interface (`wheelyard.proxy_cache.health`);
- an answer with a lower `X-PyPI-Last-Serial` than the stored page never replaces it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from anyio import to_thread

from wheelyard.proxy_cache.health import BreakerReports, Circuit
from wheelyard.proxy_cache.readahead import MetadataPick
from wheelyard.proxy_cache.upstream import UpstreamClient, UpstreamTimeout, circuit_label
from wheelyard.shared.cache import Cache, LockTimeout
from wheelyard.shared.concurrency import SingleFlight
from wheelyard.shared.domain import proxied as store
from wheelyard.shared.domain.repositories import RepositoryView, proxy_state_key
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.packaging.simple.model import SimpleFile
from wheelyard.shared.packaging.simple.upstream import PageHead, read_upstream_page
from wheelyard.shared.web.pagecache import PageCache

log = logging.getLogger(__name__)

#: How long an upstream 404 is believed (briefly: docs/standards.md §9).
NEGATIVE_TTL = 60.0
#: How long a negative entry's row is kept before `purge_negatives` deletes it.
NEGATIVE_PURGE_AFTER = 10 * NEGATIVE_TTL
#: How long the state key lives in the cache (freshness is decided by its timestamp); a
#: negative entry's only as long as it is believed, so unknown names do not pile up there.
STATE_TTL = 24 * 3600.0


#: Told the wheel whose `.metadata` to read ahead (`readahead`): (repository, project, wheel).
ReadAhead = Callable[[RepositoryView, str, SimpleFile], None]


@dataclass(frozen=True)
class PageState:
    """What the cache says about a proxy page."""

    version: str
    fetched_at: float
    missing: bool

    def encode(self) -> bytes:
        return f"{self.version} {self.fetched_at!r} {int(self.missing)}".encode()

    @classmethod
    def decode(cls, raw: bytes) -> PageState | None:
        try:
            version, at, missing = raw.decode().split(" ")
            return cls(version, float(at), missing == "1")
        except ValueError:
            return None

    @classmethod
    def of(cls, row: store.StoredPage) -> PageState:
        return cls(row.version, row.fetched_at, row.missing)


@dataclass(frozen=True)
class CurrentPage:
    """The page to serve: its data version, and whether it is served stale after a failure."""

    version: str
    stale: bool = False


class ProxyPages:
    """Pages of proxy repositories (see the module docstring). One per process."""

    def __init__(
        self,
        *,
        sessions: store.SessionFactory,
        cache: Cache,
        client: UpstreamClient,
        default_ttl: int,
        reports: BreakerReports | None = None,
        page_cache: PageCache | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        """`reports`: the `on_change` hook of `client`'s breaker, whose queued health records
        are written after every round of upstream requests. `page_cache`: where the list of
        cached projects is announced as changed (`list_serial`). `read_ahead`: called with
        the wheel whose `.metadata` an installer is sure to ask for next (`readahead`) when
        a page fetched in full has one; it must not wait."""
        self.page_cache = page_cache
        self.read_ahead = read_ahead
        self.sessions = sessions
        self.cache = cache
        self.client = client
        self.default_ttl = default_ttl
        self._refreshing: SingleFlight[tuple[int, str], CurrentPage] = SingleFlight()
        self._reports = reports or BreakerReports()

    # -- freshness ----------------------------------------------------------------------------

    def ttl(self, repo: RepositoryView) -> float:
        """Seconds a page of `repo` is fresh."""
        return float(repo.ttl if repo.ttl is not None else self.default_ttl)

    def is_fresh(self, repo: RepositoryView, state: PageState, now: float) -> bool:
        age = now - state.fetched_at
        if state.missing:
            return age < NEGATIVE_TTL
        return age < self.ttl(repo)

    # -- lookups ------------------------------------------------------------------------------

    async def current(self, repo: RepositoryView, name: str, *, fresh: bool = True) -> CurrentPage:
        """The page of `name` in proxy repository `repo`, refreshed first when it is stale
        (or, with `fresh=False`, only when there is none). Raises NotFound (upstream 404),
        UpstreamTimeout or UpstreamError (no page to fall back on)."""
        state = await self._state(repo.id, name)
        usable = state is not None and (
            (not fresh and not state.missing) or self.is_fresh(repo, state, time.time())
        )
        if state is not None and usable:
            if state.missing:
                raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
            return CurrentPage(state.version)
        return await self._refresh(repo, name, state)

    async def content(
        self, repo: RepositoryView, name: str, current: CurrentPage
    ) -> store.PageContent:
        """The stored page of `name` with its files, at `current`'s version or newer (the
        newest stored; files never change, so a newer page will do). Raises NotFound when
        nothing usable is stored.

        Kept in this process per version (`PageCache.derived`): a cold install asks for a
        page's files once per file it downloads, and the page just fetched is kept as it is
        stored (`_keep_content`), so none of these reads the database."""

        async def load() -> store.PageContent | None:
            async with self.sessions() as session:
                return await store.load_content(session, repo.id, name)

        if self.page_cache is None:
            found = await load()
        else:
            found = await self.page_cache.derived(
                _content_scope(repo.id), 0, f"{name}|{current.version}", load, _content_size
            )
        if found is None:
            raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
        return found

    async def _keep_content(self, repo_id: int, name: str, content: store.PageContent) -> None:
        if self.page_cache is not None:

            async def ready() -> store.PageContent:
                return content

            variant = f"{name}|{content.row.version}"
            await self.page_cache.derived(_content_scope(repo_id), 0, variant, ready, _content_size)

    async def find_file(
        self, repo: RepositoryView, name: str, filename: str
    ) -> tuple[SimpleFile, int]:
        """The file `filename` listed on `name`'s page and the index of the upstream the page
        came from. Any stored copy of the page will do (files are immutable); the page is
        refreshed only when it does not list the file."""
        current = await self.current(repo, name, fresh=False)
        content = await self.content(repo, name, current)
        found = await to_thread.run_sync(content.find, filename)
        if found is None:
            current = await self.current(repo, name)
            content = await self.content(repo, name, current)
            found = await to_thread.run_sync(content.find, filename)
        if found is None:
            raise NotFound(f"File '{filename}' does not exist in '{repo.path}'.")
        return found, content.row.source

    async def status(self, repo: RepositoryView, name: str) -> str | None:
        """The PEP 792 status the stored page of `name` carries (None: none, or no page)."""
        async with self.sessions() as session:
            row = await store.load(session, repo.id, name)
        value = row.head.get("status") if row is not None else None
        return value if isinstance(value, str) else None

    async def list_serial(self, repo: RepositoryView) -> int:
        """A number that moves forward whenever the list of `repo`'s cached projects may have
        changed (after every stored upstream answer), for caching its rendered root page.

        With no hint in the cache the list is unknown, so a new number is taken (the time in
        microseconds): the page is rendered again, at most once per hint lifetime."""
        if self.page_cache is None:
            return _now_serial()

        async def fresh() -> int:
            return _now_serial()

        serial = await self.page_cache.serial(proxy_list_scope(repo.id), fresh)
        assert serial is not None
        return serial

    async def _list_changed(self, repo_id: int) -> None:
        # After the commit, so a root page rendered from an older snapshot is never under
        # the new number (the time plus one: past every number taken before now).
        if self.page_cache is not None:
            await self.page_cache.changed(proxy_list_scope(repo_id), _now_serial() + 1)

    async def cached_projects(self, repo: RepositoryView) -> list[str]:
        """Projects this proxy repository has a good page for (its root page)."""
        async with self.sessions() as session:
            return await store.cached_projects(session, repo.id)

    async def expire(self, repo: RepositoryView, name: str) -> bool:
        """Force the next request for `name` to refetch it in full."""
        return await store.expire(self.sessions, self.cache, repo.id, name)

    # -- state --------------------------------------------------------------------------------

    async def _state(self, repo_id: int, name: str) -> PageState | None:
        raw = await self.cache.get(_state_key(repo_id, name))
        if raw is not None:
            state = PageState.decode(raw)
            if state is not None:
                return state
        async with self.sessions() as session:
            row = await store.load(session, repo_id, name)
        if row is None:
            return None
        state = PageState.of(row)
        await self._publish(repo_id, name, state)
        return state

    async def _publish(self, repo_id: int, name: str, state: PageState) -> None:
        ttl = NEGATIVE_TTL if state.missing else STATE_TTL
        await self.cache.set(_state_key(repo_id, name), state.encode(), ttl=ttl)

    async def purge_negatives(self) -> int:
        """Delete negative entries older than `NEGATIVE_PURGE_AFTER` from the database."""
        return await store.purge_expired_negatives(
            self.sessions, time.time() - NEGATIVE_PURGE_AFTER
        )

    # -- refresh ------------------------------------------------------------------------------

    async def _refresh(
        self, repo: RepositoryView, name: str, state: PageState | None
    ) -> CurrentPage:
        usable = state is not None and not state.missing
        key = (repo.id, name)
        if usable and self._refreshing.running(key):
            assert state is not None
            return CurrentPage(state.version)  # being refreshed: serve what we have
        return await self._refreshing.run(
            key,
            lambda: self._refresh_locked(
                repo, name, usable_version=state.version if usable and state else None
            ),
        )

    async def _refresh_locked(
        self, repo: RepositoryView, name: str, *, usable_version: str | None
    ) -> CurrentPage:
        budget = sum(u.timeout for u in repo.upstreams) + 5.0
        try:
            # With a copy to serve, do not queue behind another replica's refresh.
            async with self.cache.lock(
                f"proxy-page:{repo.id}:{name}",
                ttl=budget,
                wait=0 if usable_version else budget,
            ):
                seen = None
                async with self.sessions() as session:
                    row = await store.load(session, repo.id, name)
                    if row is None or not row.usable or "seen" not in row.head:
                        # No upstream can be asked conditionally: a full answer is expected,
                        # which needs the first-seen times (read in the same session).
                        seen = await store.seen_times(session, repo.id, name)
                if row is not None:
                    state = PageState.of(row)
                    if self.is_fresh(repo, state, time.time()):
                        # Refreshed by another replica while we waited for the lock.
                        await self._publish(repo.id, name, state)
                        if row.missing:
                            raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
                        return CurrentPage(state.version)
                return await self._fetch(repo, name, row, seen)
        except LockTimeout:
            if usable_version is not None:
                return CurrentPage(usable_version)
            raise UpstreamTimeout(
                f"Another fetch of '{name}' from the upstream is taking too long."
            ) from None

    async def _fetch(
        self,
        repo: RepositoryView,
        name: str,
        row: store.StoredPage | None,
        seen: dict[str, str] | None,
    ) -> CurrentPage:
        try:
            return await self._fetch_from_upstreams(repo, name, row, seen)
        finally:
            await self._reports.publish(self.cache)

    async def _fetch_from_upstreams(
        self,
        repo: RepositoryView,
        name: str,
        row: store.StoredPage | None,
        known_seen: dict[str, str] | None,
    ) -> CurrentPage:
        """Ask the upstreams in turn; `known_seen`: the first-seen times, when already read."""
        fetched_at = time.time()
        errors: list[UpstreamError] = []
        breaker = self.client.breaker
        for index, upstream in enumerate(repo.upstreams):
            circuit = Circuit(repo.id, index, repo.path, circuit_label(index, upstream))
            if not breaker.allow(circuit):
                errors.append(UpstreamError("The upstream is failing; not asked (circuit open)."))
                continue
            # A page stored before first-seen times were kept is fetched in full once, so
            # that its files get theirs.
            conditional = (
                row is not None and row.usable and row.source == index and "seen" in row.head
            )
            try:
                result = await self.client.fetch_page(
                    upstream,
                    name,
                    etag=row.etag if conditional and row else None,
                    last_modified=row.last_modified if conditional and row else None,
                )
            except UpstreamError as exc:
                breaker.failure(circuit, str(exc))
                log.warning("upstream %d of %s failed for %s: %s", index, repo.path, name, exc)
                errors.append(exc)
                continue
            try:
                if result.status == 404:
                    breaker.success(circuit)
                    continue
                if result.status == 304:
                    if not conditional or row is None:
                        raise UpstreamError("The upstream answered 304 to an unconditional GET.")
                    breaker.success(circuit)
                    return await self._keep(repo, name, row, fetched_at)
                seen = known_seen
                if seen is None:  # after a conditional request the upstream answered in full
                    async with self.sessions() as session:
                        seen = await store.seen_times(session, repo.id, name)
                pick = MetadataPick() if self.read_ahead is not None else None
                head, files = await to_thread.run_sync(
                    _parse, result.body, result.content_type, result.url, name, seen, pick
                )
            except UpstreamError as exc:
                breaker.failure(circuit, str(exc))
                log.warning("upstream %d of %s failed for %s: %s", index, repo.path, name, exc)
                errors.append(exc)
                continue
            finally:
                result.close()
            breaker.success(circuit)
            old_serial = row.head.get("serial") if row is not None and row.usable else None
            if (
                row is not None
                and result.serial is not None
                and isinstance(old_serial, int)
                and result.serial < old_serial
                and row.source == index
            ):
                # A lagging mirror or CDN node: never let an older page replace a newer one.
                log.info(
                    "kept %s/%s: upstream serial %s < %s",
                    repo.path,
                    name,
                    result.serial,
                    old_serial,
                )
                return await self._keep(repo, name, row, fetched_at)
            data, blob = files.finish(
                {
                    "versions": head.versions,
                    "status": head.status,
                    "status_reason": head.status_reason,
                    "serial": result.serial,
                    "source": index,
                    "seen": True,
                },
                drop_files=head.status == "quarantined",
            )
            stored = await store.save(
                self.sessions,
                repo.id,
                name,
                data=data,
                files=blob,
                etag=result.etag,
                last_modified=result.last_modified,
                fetched_at=fetched_at,
                missing=False,
                new_files=files.new_files if head.status != "quarantined" else (),
                seen_at=files.now,
            )
            await self._list_changed(repo.id)
            version = data["digest"]
            if stored:
                page = store.StoredPage(
                    project=name,
                    head=data,
                    etag=result.etag,
                    last_modified=result.last_modified,
                    fetched_at=fetched_at,
                    missing=False,
                )
                await self._keep_content(repo.id, name, store.PageContent(page, blob))
            await self._publish(repo.id, name, PageState(version, fetched_at, False))
            if stored and pick is not None and self.read_ahead is not None:
                ahead = pick.choice() if head.status != "quarantined" else None
                if ahead is not None:
                    self.read_ahead(repo, name, ahead)
            return CurrentPage(version)
        if errors:
            if row is not None and row.usable:
                return CurrentPage(row.version, stale=True)
            timeouts = [e for e in errors if isinstance(e, UpstreamTimeout)]
            raise timeouts[0] if timeouts else errors[0]
        # Every upstream said 404: a negative entry, believed for NEGATIVE_TTL seconds.
        await store.save(
            self.sessions,
            repo.id,
            name,
            data=None,
            etag=None,
            last_modified=None,
            fetched_at=fetched_at,
            missing=True,
        )
        await self._list_changed(repo.id)
        await self._publish(repo.id, name, PageState("-", fetched_at, True))
        raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")

    async def _keep(
        self, repo: RepositoryView, name: str, row: store.StoredPage, fetched_at: float
    ) -> CurrentPage:
        """The stored page is confirmed: only its age is reset."""
        await store.save(
            self.sessions,
            repo.id,
            name,
            data=None,
            etag=row.etag,
            last_modified=row.last_modified,
            fetched_at=fetched_at,
            missing=False,
        )
        await self._publish(repo.id, name, PageState(row.version, fetched_at, False))
        return CurrentPage(row.version)


def _parse(
    body: IO[bytes],
    content_type: str,
    url: str,
    name: str,
    seen: dict[str, str],
    pick: MetadataPick | None,
) -> tuple[PageHead, store.PageWriter]:
    """Parse a spooled upstream page into a `PageWriter` (in a worker thread); `seen`: when
    the repository first listed the files it listed before; `pick`, when given, sees every
    file too."""
    writer = store.PageWriter(seen)
    if pick is None:
        return read_upstream_page(body, content_type, url, writer.add, project=name), writer

    def both(listed: SimpleFile, version: str) -> None:
        writer.add(listed, version)
        pick.see(listed, version)

    head = read_upstream_page(body, content_type, url, both, project=name)
    return head, writer


def proxy_list_scope(repo_id: int) -> str:
    """The page-cache scope of a proxy repository's list of cached projects."""
    return f"{repo_id}:proxy-list"


def _now_serial() -> int:
    return time.time_ns() // 1000


def _content_scope(repo_id: int) -> str:
    return f"proxy-content:{repo_id}"


def _content_size(content: store.PageContent) -> int:
    """Bytes a kept page content takes, roughly: the compressed files and the head."""
    versions = content.row.head.get("versions")
    return len(content.blob) + 64 * (len(versions) if isinstance(versions, list) else 0) + 1000


def _state_key(repo_id: int, name: str) -> str:
    return proxy_state_key(repo_id, name)
