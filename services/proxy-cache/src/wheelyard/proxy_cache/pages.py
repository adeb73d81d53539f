"""Proxy project pages: freshness, revalidation, persistence, stale serving, negative entries.

The state of a page (which version of its data is current, when the upstream last confirmed
it, whether it was a 404) lives in the cache under one small key, so a fresh page costs one
cache read and no database session; the data itself lives in `proxy_pages` (see
`wheelyard.shared.domain.proxied`), and decoded copies are kept in a small per-process LRU.

Refreshing a page:
- at most one upstream fetch per (repository, project) at a time: single-flight in the
  process, and a cache lock across processes; whoever waits reads the stored page afterwards;
  a request that already has a copy to serve does not wait for someone else's refresh;
- stale pages are revalidated with If-None-Match / If-Modified-Since (304 keeps the body);
- upstreams are tried in order, the first that knows the project wins; a 404 from all of
  them is stored as a negative entry for `NEGATIVE_TTL` seconds;
- when the upstream fails (timeout, 5xx, unreachable, open circuit) the last good page is
  served, marked stale; without one the error is raised (502, or 504 for a timeout);
- an answer with a lower `X-PyPI-Last-Serial` than the stored page never replaces it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from wheelyard.proxy_cache.upstream import UpstreamClient, UpstreamTimeout
from wheelyard.shared.cache import Cache, LockTimeout
from wheelyard.shared.concurrency import SingleFlight
from wheelyard.shared.domain import proxied as store
from wheelyard.shared.domain import upstream_health
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.domain.upstream_health import UpstreamHealth
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile
from wheelyard.shared.packaging.simple.upstream import parse_upstream_page

log = logging.getLogger(__name__)

#: How long an upstream 404 is believed (reliability.md §3.1: minutes at most).
NEGATIVE_TTL = 60.0
#: How long the state key lives in the cache (freshness is decided by its timestamp).
STATE_TTL = 24 * 3600.0
#: Decoded pages kept per process.
DECODED_PAGES = 512


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


@dataclass(frozen=True)
class DecodedPage:
    """A stored page ready for rendering and file lookups (URLs still the upstream's)."""

    page: ProjectPage
    by_filename: dict[str, SimpleFile]
    source: int


class ProxyPages:
    """Pages of proxy repositories (see the module docstring). One per process."""

    def __init__(
        self,
        *,
        sessions: store.SessionFactory,
        cache: Cache,
        client: UpstreamClient,
        default_ttl: int,
    ) -> None:
        self.sessions = sessions
        self.cache = cache
        self.client = client
        self.default_ttl = default_ttl
        self._refreshing: SingleFlight[tuple[int, str], CurrentPage] = SingleFlight()
        self._decoded: OrderedDict[tuple[int, str, str], DecodedPage] = OrderedDict()

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

    async def decoded(self, repo: RepositoryView, name: str, version: str) -> DecodedPage:
        """The stored page of `name` (the given version when still in memory, else the
        database's, which is never older). Raises NotFound when nothing is stored."""
        key = (repo.id, name, version)
        hit = self._decoded.get(key)
        if hit is not None:
            self._decoded.move_to_end(key)
            return hit
        async with self.sessions() as session:
            row = await store.load(session, repo.id, name)
        if row is None or not row.usable:
            raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
        decoded = self._remember_decoded(repo.id, name, row.data, row.version)
        self._decoded[key] = decoded
        return decoded

    async def find_file(
        self, repo: RepositoryView, name: str, filename: str
    ) -> tuple[SimpleFile, int]:
        """The file `filename` listed on `name`'s page and the index of the upstream the page
        came from. Any stored copy of the page will do (files are immutable); the page is
        refreshed only when it does not list the file."""
        page = await self.current(repo, name, fresh=False)
        decoded = await self.decoded(repo, name, page.version)
        found = decoded.by_filename.get(filename)
        if found is None:
            page = await self.current(repo, name)
            decoded = await self.decoded(repo, name, page.version)
            found = decoded.by_filename.get(filename)
        if found is None:
            raise NotFound(f"File '{filename}' does not exist in '{repo.path}'.")
        return found, decoded.source

    async def cached_projects(self, repo: RepositoryView) -> list[str]:
        """Projects this proxy repository has a good page for (its root page)."""
        async with self.sessions() as session:
            return await store.cached_projects(session, repo.id)

    async def expire(self, repo: RepositoryView, name: str) -> bool:
        """Force the next request for `name` to refetch it in full."""
        return await store.expire(self.sessions, self.cache, repo.id, name)

    # -- state --------------------------------------------------------------------------------

    async def _state(self, repo_id: int, name: str) -> PageState | None:
        raw = await self.cache.get(store.state_key(repo_id, name))
        if raw is not None:
            state = PageState.decode(raw)
            if state is not None:
                return state
        async with self.sessions() as session:
            row = await store.load(session, repo_id, name)
        if row is None:
            return None
        if row.usable:
            self._remember_decoded(repo_id, name, row.data, row.version)
        state = PageState.of(row)
        await self._publish(repo_id, name, state)
        return state

    async def _publish(self, repo_id: int, name: str, state: PageState) -> None:
        await self.cache.set(store.state_key(repo_id, name), state.encode(), ttl=STATE_TTL)

    def _remember_decoded(
        self, repo_id: int, name: str, data: dict[str, Any], version: str
    ) -> DecodedPage:
        files = store.files_of(data)
        status = data.get("status")
        page = ProjectPage(
            name=name,
            files=files,
            versions=list(data.get("versions") or ()),
            status=status if isinstance(status, str) else None,
            status_reason=data.get("status_reason"),
        )
        decoded = DecodedPage(page, {f.filename: f for f in files}, int(data.get("source") or 0))
        key = (repo_id, name, version)
        self._decoded[key] = decoded
        self._decoded.move_to_end(key)
        while len(self._decoded) > DECODED_PAGES:
            self._decoded.popitem(last=False)
        return decoded

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
                async with self.sessions() as session:
                    row = await store.load(session, repo.id, name)
                if row is not None:
                    state = PageState.of(row)
                    if self.is_fresh(repo, state, time.time()):
                        # Refreshed by another replica while we waited for the lock.
                        await self._publish(repo.id, name, state)
                        if row.missing:
                            raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
                        return CurrentPage(state.version)
                return await self._fetch(repo, name, row)
        except LockTimeout:
            if usable_version is not None:
                return CurrentPage(usable_version)
            raise UpstreamTimeout(
                f"Another fetch of '{name}' from the upstream is taking too long."
            ) from None

    async def _fetch(
        self, repo: RepositoryView, name: str, row: store.StoredPage | None
    ) -> CurrentPage:
        fetched_at = time.time()
        errors: list[UpstreamError] = []
        breaker = self.client.breaker
        for index, upstream in enumerate(repo.upstreams):
            circuit = (repo.id, index)
            if not breaker.allow(circuit):
                errors.append(UpstreamError("The upstream is failing; not asked (circuit open)."))
                continue
            conditional = row is not None and row.usable and row.data.get("source") == index
            try:
                result = await self.client.fetch_page(
                    upstream,
                    name,
                    etag=row.etag if conditional and row else None,
                    last_modified=row.last_modified if conditional and row else None,
                )
                if result.status == 404:
                    await self._upstream_answered(repo, index)
                    continue
                if result.status == 304:
                    if not conditional or row is None:
                        raise UpstreamError("The upstream answered 304 to an unconditional GET.")
                    await self._upstream_answered(repo, index)
                    return await self._keep(repo, name, row, fetched_at)
                page = await to_thread.run_sync(
                    lambda r=result: parse_upstream_page(  # type: ignore[misc]
                        r.body, r.content_type, r.url, project=name
                    )
                )
            except UpstreamError as exc:
                await self._upstream_failed(repo, index, exc)
                log.warning("upstream %d of %s failed for %s: %s", index, repo.path, name, exc)
                errors.append(exc)
                continue
            await self._upstream_answered(repo, index)
            old_serial = row.data.get("serial") if row is not None and row.usable else None
            if (
                row is not None
                and result.serial is not None
                and isinstance(old_serial, int)
                and result.serial < old_serial
                and row.data.get("source") == index
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
            page = ProjectPage(
                name=name,
                files=page.files,
                versions=page.versions,
                status=page.status,
                status_reason=page.status_reason,
            )
            data = store.page_to_data(page, serial=result.serial, source=index)
            await store.save(
                self.sessions,
                repo.id,
                name,
                data=data,
                etag=result.etag,
                last_modified=result.last_modified,
                fetched_at=fetched_at,
                missing=False,
            )
            version = store.data_version(data)
            self._remember_decoded(repo.id, name, data, version)
            await self._publish(repo.id, name, PageState(version, fetched_at, False))
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
        await self._publish(repo.id, name, PageState("-", fetched_at, True))
        raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")

    async def _upstream_answered(self, repo: RepositoryView, index: int) -> None:
        breaker = self.client.breaker
        circuit = (repo.id, index)
        recovering = breaker.failures_of(circuit) > 0
        breaker.success(circuit)
        if recovering:  # only a change is reported: the healthy path writes nothing
            await upstream_health.report(
                self.cache, repo.id, index, UpstreamHealth(recovered_at=time.time())
            )

    async def _upstream_failed(self, repo: RepositoryView, index: int, exc: Exception) -> None:
        breaker = self.client.breaker
        circuit = (repo.id, index)
        breaker.failure(circuit)
        health = UpstreamHealth(
            failures=breaker.failures_of(circuit),
            open_until=breaker.open_until(circuit),
            last_error=str(exc),
            last_failure_at=time.time(),
        )
        await upstream_health.report(self.cache, repo.id, index, health)

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
