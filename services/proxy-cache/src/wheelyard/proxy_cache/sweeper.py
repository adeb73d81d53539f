"""The periodic storage sweep of a proxy-cache process: retention of the proxy caches, then
garbage collection of unreferenced blobs (`shared/domain/maintenance.py`).

Every proxy-cache process (embedded or split, any number of replicas) runs this loop; the
sweep's database lease lets one of them work per round and the others skip it. Each round
first writes this process's noted download times, so retention sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

from wheelyard.proxy_cache.downloads import DownloadStamps
from wheelyard.shared.backends import Backends
from wheelyard.shared.domain import maintenance

log = logging.getLogger(__name__)
#: The longest time between two periodic garbage collections.
COLLECT_EVERY = timedelta(hours=6)


class Sweeper:
    """Runs `maintenance.sweep` every WHEELYARD_RETENTION_INTERVAL seconds (0: never);
    garbage collection with it every `collect_every` at most."""

    def __init__(self, backends: Backends, stamps: DownloadStamps) -> None:
        self.backends = backends
        self.stamps = stamps
        self.interval = float(backends.settings.retention_interval)
        self.grace = timedelta(seconds=backends.settings.gc_grace)
        # Listing the whole blob store costs (S3 requests, disk walks): garbage is collected
        # every few hours at most, and at least twice per grace period.
        self.collect_every = min(COLLECT_EVERY, self.grace / 2)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (unless the interval is 0)."""
        if self.interval > 0:
            self._task = asyncio.create_task(self._forever(), name="storage-sweep")

    async def run_once(self) -> maintenance.Sweep | None:
        """One round; None when another process holds the sweep."""
        await self.stamps.flush()
        try:
            report = await maintenance.sweep(
                self.backends.sessions,
                self.backends.blobs,
                grace=self.grace,
                collect_every=self.collect_every,
            )
        except maintenance.SweepBusy as busy:
            log.debug("storage sweep skipped: %s", busy)
            return None
        removed = sum(len(r.removed) for r in report.repositories)
        deleted = len(report.collection.deleted) if report.collection else 0
        if removed or deleted:
            log.info(
                "storage sweep: %d cached files removed, %d unreferenced blobs deleted",
                removed,
                deleted,
            )
        return report

    async def _forever(self) -> None:
        while True:
            # Jittered, so replicas started together do not all try at once.
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))  # noqa: S311
            try:
                await self.run_once()
            except Exception:  # a backend may be down for a while: try again next round
                log.warning("storage sweep failed", exc_info=True)

    async def aclose(self) -> None:
        """Stop the loop (a round in progress is cancelled; its lease lapses or is released)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
