"""A cache of rendered pages that can never serve a page older than the last committed change.

Pages are stored under a key that contains the project's serial (bumped in the same database
transaction as every change). Readers learn the current serial from a small cache entry that
writers refresh after commit; if that entry is missing they read the serial from the database.
A reader that rendered from a snapshot taken just before a commit stores its page under the old
serial, where nobody looks any more, so read-after-write holds (uv publish --check-url needs it).

What a hot route derives from the same data (the file records of a project at a serial, say)
is kept the same way, under the same serial, in this process only (`derived`): a download is
then answered from memory, and the first request after a change reads the database again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from cachetools import LRUCache

from wheelyard.shared.cache import Cache
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.concurrency import SingleFlight
from wheelyard.shared.metrics import CACHE_REQUESTS
from wheelyard.shared.web.conditional import etag_for

#: How long the serial hint is trusted; bounds staleness if a writer's refresh was lost
#: (a cache outage between commit and refresh).
SERIAL_TTL = 60.0
#: The same with an in-process cache (embedded mode): the writers run in this process and
#: announce to this very memory, which has no outage to lose an announcement in, so a hint
#: is kept as long as a page. Each expiry would cost every project a database query (an
#: install or a resolve after a quiet minute paid one per project).
IN_PROCESS_SERIAL_TTL = 3600.0
#: How long a rendered page is kept; any change moves readers to a new key at once.
PAGE_TTL = 3600.0
#: The in-process copy of pages (with a remote cache): at most this many bytes of bodies.
LOCAL_BYTES = 64 * 1024 * 1024
#: Values derived per serial (`PageCache.derived`): at most this many (estimated) bytes.
DERIVED_BYTES = 32 * 1024 * 1024

T = TypeVar("T")

_HIT = CACHE_REQUESTS.labels("page", "hit")
_MISS = CACHE_REQUESTS.labels("page", "miss")


@dataclass(frozen=True)
class CachedPage:
    """A rendered body and its strong ETag."""

    body: bytes
    etag: str


def _serial_key(scope: str) -> str:
    return f"serial:{scope}"


def _page_key(scope: str, serial: int, variant: str) -> str:
    digest = hashlib.blake2s(variant.encode(), digest_size=8).hexdigest()
    return f"page:{scope}:{serial}:{digest}"


def _derived_key(scope: str, serial: int, variant: str) -> str:
    # In-process only, so the variant is kept whole: no digest, so no two variants (blob
    # keys, filenames) can ever share an entry.
    return f"{scope}:{serial}:{variant}"


class PageCache:
    """Serial-keyed rendered pages. `scope` names what a serial counts (a project, a list).

    Rendering is single-flight per process: concurrent misses of one page wait for a single
    render instead of each rendering it (a 2,000-file page takes long enough to render that
    32 parallel renders would starve the event loop).

    With `local` (a remote cache such as Redis), pages are also kept in this process, least
    recently used first out past `LOCAL_BYTES`: a page's key holds its serial, so what is
    stored under a key never goes stale, and a hit then costs one round trip (the serial)
    instead of two.
    """

    def __init__(
        self, cache: Cache, *, local: bool = False, serial_ttl: float = SERIAL_TTL
    ) -> None:
        """`local`: keep pages in this process too (a remote cache); `serial_ttl`: how long a
        serial hint is trusted (`SERIAL_TTL`, or `IN_PROCESS_SERIAL_TTL` when the cache is
        this process's own memory)."""
        self.cache = cache
        self.serial_ttl = serial_ttl
        self._rendering: SingleFlight[str, CachedPage] = SingleFlight()
        self._local: OrderedDict[str, CachedPage] | None = OrderedDict() if local else None
        self._local_bytes = 0
        self._derived: LRUCache[str, tuple[Any, int]] = LRUCache(
            maxsize=DERIVED_BYTES, getsizeof=lambda entry: entry[1]
        )
        self._deriving: SingleFlight[str, Any] = SingleFlight()

    @classmethod
    def over(cls, cache: Cache) -> PageCache:
        """The page cache a process keeps over `cache`: a remote cache (Redis) is backed by an
        in-process copy of immutable pages; an in-process cache cannot lose a writer's
        announcement, so its serial hints live long."""
        remote = not isinstance(cache, MemoryCache)
        return cls(cache, local=remote, serial_ttl=SERIAL_TTL if remote else IN_PROCESS_SERIAL_TTL)

    async def serial(self, scope: str, load: Callable[[], Awaitable[int | None]]) -> int | None:
        """The current serial of `scope`: from the cache, else `load()` (None: not found)."""
        raw = await self.cache.get(_serial_key(scope))
        if raw is not None:
            return int(raw)
        value = await load()
        if value is not None:
            # set_max: a reader that loaded an old serial just before a commit cannot push
            # the hint back below the writer's newer one.
            return await self.cache.set_max(_serial_key(scope), value, ttl=self.serial_ttl)
        return value

    async def page(
        self, scope: str, serial: int, variant: str, render: Callable[[], Awaitable[bytes]]
    ) -> CachedPage:
        """The page for (`scope`, `serial`, `variant`), rendered by `render()` on a miss.

        `variant` must cover everything else the body depends on (media type, base URL).
        """
        key = _page_key(scope, serial, variant)
        local = self._local
        if local is not None:
            found = local.get(key)
            if found is not None:
                local.move_to_end(key)
                _HIT.inc()
                return found
        stored = await self.cache.get(key)
        if stored is not None:
            _HIT.inc()
            etag, _, body = stored.partition(b"\n")
            return self._keep(key, CachedPage(body, etag.decode()))
        _MISS.inc()

        async def render_and_store() -> CachedPage:
            body = await render()
            page = CachedPage(body, etag_for(body))
            # The ETag is stored with the body so a hit costs no hashing.
            await self.cache.set(key, page.etag.encode() + b"\n" + body, ttl=PAGE_TTL)
            return self._keep(key, page)

        return await self._rendering.run(key, render_and_store)

    async def derived(
        self,
        scope: str,
        serial: int,
        variant: str,
        build: Callable[[], Awaitable[T | None]],
        size: Callable[[T], int],
    ) -> T | None:
        """The value `build()` made for (`scope`, `serial`, `variant`), kept in this process.

        Like a page, a value is stored under the serial it was built at, so it is never used
        after a change. None (nothing found) is not kept. Builds are single-flight; a value of
        more than an eighth of `DERIVED_BYTES` (by `size`) is returned but not kept.
        """
        key = _derived_key(scope, serial, variant)
        hit = self._derived.get(key)
        if hit is not None:
            return cast(T, hit[0])

        async def build_and_keep() -> T | None:
            value = await build()
            if value is not None:
                cost = size(value) + len(key) + 200
                if cost <= DERIVED_BYTES // 8:
                    self._derived[key] = (value, cost)
            return value

        return cast(T | None, await self._deriving.run(key, build_and_keep))

    def drop_derived(self, scope: str, serial: int, variant: str) -> None:
        """Forget one derived value (it proved wrong: the bytes it points at are gone)."""
        self._derived.pop(_derived_key(scope, serial, variant), None)

    async def forget(self, scope: str) -> None:
        """Drop the serial hint of `scope` (its repository is gone)."""
        await self.cache.delete(_serial_key(scope))

    def _keep(self, key: str, page: CachedPage) -> CachedPage:
        local = self._local
        if local is None or key in local or len(page.body) > LOCAL_BYTES // 8:
            return page
        local[key] = page
        self._local_bytes += len(page.body)
        while self._local_bytes > LOCAL_BYTES:
            _key, dropped = local.popitem(last=False)
            self._local_bytes -= len(dropped.body)
        return page

    async def changed(self, scope: str, serial: int) -> None:
        """Tell readers that `scope` is now at `serial` (call after the commit)."""
        await self.cache.set_max(_serial_key(scope), serial, ttl=self.serial_ttl)
