"""Last-download times of proxy files, gathered in memory and written in batches.

Retention removes the least recently downloaded files first, so each record carries when it
was last served (`proxy_files.last_downloaded`). A day-scale figure does not need a database
write per download (a write per request would serialise SQLite and load Postgres on the
hottest path): a download only notes the time in memory when the stored one is older than
`records.STAMP_EVERY`, and the notes are written together every `FLUSH_EVERY` seconds (and at
shutdown, and before each retention sweep of this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, update

from wheelyard.proxy_cache.records import STAMP_EVERY, SessionFactory
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import ProxyFile, UTCDateTime, utcnow

log = logging.getLogger(__name__)
#: Seconds between batch writes.
FLUSH_EVERY = 60.0
#: Notes kept at most between writes (one per file: a bounded, small map).
MAX_PENDING = 100_000


class DownloadStamps:
    """Noted downloads waiting to be written (see the module docstring). One per process."""

    def __init__(self, sessions: SessionFactory, *, every: float = FLUSH_EVERY) -> None:
        self.sessions = sessions
        self.every = every
        self._pending: dict[tuple[int, str], datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def note(self, repository_id: int, filename: str, last_downloaded: datetime) -> None:
        """A download of `filename` whose record says it was last downloaded then: noted when
        that is older than `STAMP_EVERY` (no I/O here)."""
        now = utcnow()
        if now - last_downloaded < STAMP_EVERY:
            return
        if len(self._pending) >= MAX_PENDING:
            return  # written at the next flush; a missed note only makes a file look older
        self._pending[(repository_id, filename)] = now

    async def flush(self) -> int:
        """Write every noted download in one transaction; returns how many."""
        async with self._lock:
            if not self._pending:
                return 0
            batch, self._pending = self._pending, {}
            stmt = (
                update(ProxyFile)
                .where(
                    col(ProxyFile.repository_id) == sa.bindparam("r"),
                    col(ProxyFile.filename) == sa.bindparam("f"),
                )
                .values(last_downloaded=sa.bindparam("t", type_=UTCDateTime()))
            )
            rows = [{"r": r, "f": f, "t": t} for (r, f), t in batch.items()]
            try:
                async with self.sessions() as session:
                    await begin_write(session)
                    connection = await session.connection()
                    await connection.execute(stmt, rows)
                    await session.commit()
            except Exception:
                # The database may be down: keep the notes (newer ones win) for the next try.
                for key, when in batch.items():
                    self._pending.setdefault(key, when)
                raise
            return len(rows)

    def start(self) -> None:
        """Write noted downloads every `every` seconds, in the background."""
        self._task = asyncio.create_task(self._flush_forever(), name="proxy-download-stamps")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.flush()
            except Exception:
                log.warning("writing last-download times failed", exc_info=True)

    async def aclose(self) -> None:
        """Stop the background writes, then write what is noted."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()
