"""The per-process directory of repositories: every request looks its repository up here.

One directory per process (embedded mode shares it between the gateway and every service,
see `wheelyard.shared.runtime`), so a change made through the management API is seen by
every part of that process at once (`forget`). Other processes (split-mode replicas) see it
within `ttl` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.concurrency import SingleFlight
from wheelyard.shared.domain.repositories import (
    NAME_PATTERN as _NAME,
)
from wheelyard.shared.domain.repositories import (
    RepositoryView,
    find_repository,
    view_of,
)
from wheelyard.shared.errors import NotFound
from wheelyard.shared.memo import ByteLRU

log = logging.getLogger(__name__)

#: Remembered repositories (and names found missing) at most this many estimated bytes, the
#: least recently used dropped first: names are client input, and a view carries its upstreams'
#: settings (a CA bundle is tens of kilobytes).
DIRECTORY_BYTES = 16 * 1024 * 1024


class RepositoryDirectory:
    """Repository views by `storage/name`, kept in memory.

    The hot read path looks a repository up on every request, so lookups are served from
    memory: an entry younger than `ttl` is used as is; an older one is still used while one
    background task reloads it (stale-while-revalidate), so concurrent requests never pile up
    on the database when an entry ages, and concurrent misses of one name share one load.
    """

    def __init__(self, sessions: Callable[[], AsyncSession], ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._sessions = sessions
        self._known: ByteLRU[tuple[str, str], tuple[float, RepositoryView | None]] = ByteLRU(
            DIRECTORY_BYTES
        )
        self._loading: SingleFlight[tuple[str, str], RepositoryView | None] = SingleFlight()
        #: Moves whenever a remembered view changes or is forgotten: views read before are
        #: current while it stays put (the replay token of wheelyard.shared.web.replay).
        self.generation = 0

    def peek(self, storage: str, name: str) -> tuple[bool, RepositoryView | None]:
        """(known, view) from memory only; an aged entry starts a background reload."""
        key = (storage, name)
        hit = self._known.get(key)
        if hit is None:
            return False, None
        if hit[0] <= time.monotonic():
            self._loading.start(key, lambda: self._reload(key))
        return True, hit[1]

    async def get(self, storage: str, name: str) -> RepositoryView | None:
        """The view of `storage/name`, or None when it does not exist."""
        if not (_NAME.match(storage) and _NAME.match(name)):
            # Not a possible name: answered without a query and without remembering it, so
            # that client input never grows the directory beyond small, valid names.
            return None
        known, cached = self.peek(storage, name)
        if known:
            return cached
        key = (storage, name)
        return await self._loading.run(key, lambda: self._reload(key))

    async def require(self, storage: str, name: str) -> RepositoryView:
        """Like `get`, raising NotFound when the repository does not exist."""
        view = await self.get(storage, name)
        if view is None:
            raise NotFound(f"Repository '{storage}/{name}' does not exist.")
        return view

    async def _reload(self, key: tuple[str, str]) -> RepositoryView | None:
        storage, name = key
        try:
            async with self._sessions() as session:
                repo = await find_repository(session, storage, name)
                view = await view_of(session, repo, storage) if repo is not None else None
        except Exception:
            last = self._known.get(key)
            if last is not None:  # keep serving the last good view; retry next time
                log.warning("could not reload repository %s/%s", storage, name, exc_info=True)
                return last[1]
            raise
        last = self._known.get(key)
        if last is None or last[1] != view:
            self.generation += 1
        self._known.put(key, (time.monotonic() + self.ttl, view))
        return view

    def forget(self) -> None:
        """Drop everything remembered: the next lookup of any repository reads the database."""
        self.generation += 1
        self._known.clear()
