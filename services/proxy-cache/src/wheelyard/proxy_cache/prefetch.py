"""Pre-fetching: put the files a lockfile names (and their PEP 658 `.metadata`) into a proxy
repository's cache before anyone asks, through the path that serves clients.

Every file goes through `ProxyService.locate` (the project page, refreshed only when it does
not list the file) and `ProxyFiles.ensure` (the one fetch per file and process, the
cross-replica lock, the verified write, the `proxy_files` record): a pre-fetched file is
exactly what a client's first download would have cached. Files the repository already holds
are not fetched again, so running the same lockfile twice resumes where the first run stopped.

Every pre-fetched file is pinned (`wheelyard.shared.domain.retention`): retention never
removes it until it is unpinned.

A lockfile's own sha256 is checked against the index's before anything is fetched: a file
whose lock pins other bytes than the index lists is refused (the lock and the index disagree;
fetching either would be wrong). A requirements file names versions: every wheel of the
pinned version that installs on the given targets is fetched (the sdist when none does), and
with `--hash` options only files whose sha256 is among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from anyio import to_thread
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from wheelyard.proxy_cache.service import ProxyService
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import prefetch_jobs as jobs
from wheelyard.shared.domain import retention
from wheelyard.shared.domain.hosted import same_version
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import InvalidInput, WheelyardError
from wheelyard.shared.packaging.lockfiles import Lock, Pin, TargetPlatforms
from wheelyard.shared.packaging.simple.model import SimpleFile

log = logging.getLogger(__name__)

#: Files fetched at once by default: enough to hide upstream latency, few enough not to
#: hammer it (pip and uv download a handful of files in parallel as well).
DEFAULT_JOBS = 4

Status = Literal["fetched", "cached", "failed", "skipped"]


@dataclass(frozen=True)
class Item:
    """One file to pre-fetch: where it is listed and the sha256 the lock pins, if any."""

    project: str
    version: str
    filename: str
    sha256: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one file (its `.metadata` included): fetched now, held already,
    failed with a reason a person understands, or skipped (a locked package that does not
    come from an index: the project itself, git, local paths)."""

    project: str
    filename: str
    status: Status
    reason: str | None = None
    size: int | None = None

    def as_json(self) -> dict[str, object]:
        """The outcome as a JSON object (the API's job document, the CLI's summary)."""
        return {
            "project": self.project,
            "filename": self.filename,
            "status": self.status,
            "reason": self.reason,
            "size": self.size,
        }


@dataclass
class Plan:
    """The files to fetch, and what failed or was skipped while planning (unknown versions,
    hashes that exclude every file; packages not from an index)."""

    items: list[Item] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)


class Prefetcher:
    """Pre-fetches lockfiles into one proxy repository (see the module docstring)."""

    def __init__(
        self,
        proxy: ProxyService,
        view: RepositoryView,
        *,
        jobs: int = DEFAULT_JOBS,
    ) -> None:
        if view.type != "proxy":
            raise InvalidInput(
                f"'{view.path}' is a {view.type} repository; pre-fetching fills a proxy "
                "repository's cache"
            )
        self.proxy = proxy
        self.view = view
        self.jobs = max(1, jobs)

    async def plan(self, locks: list[Lock], targets: TargetPlatforms) -> Plan:
        """The files `locks` name, pins expanded against the index (in order, deduplicated)."""
        plan = Plan()
        seen: set[str] = set()

        def add(item: Item) -> None:
            if item.filename not in seen:
                seen.add(item.filename)
                plan.items.append(item)

        for lock in locks:
            for skipped in lock.skipped:
                plan.failed.append(
                    Outcome(skipped.project, skipped.project, "skipped", skipped.reason)
                )
            for locked in lock.files:
                add(Item(locked.project, locked.version, locked.filename, locked.sha256))
            for pin in lock.pins:
                try:
                    for item in await self._expand(pin, targets):
                        add(item)
                except WheelyardError as exc:
                    label = f"{pin.project}=={pin.version}"
                    plan.failed.append(Outcome(pin.project, label, "failed", exc.message))
        return plan

    async def _expand(self, pin: Pin, targets: TargetPlatforms) -> list[Item]:
        pages = self.proxy.pages
        current = await pages.current(self.view, pin.project)
        content = await pages.content(self.view, pin.project, current)

        def of_version() -> list[tuple[SimpleFile, str]]:
            return [(f, v) for f, v in content.files_and_versions() if same_version(pin.version, v)]

        listed = await to_thread.run_sync(of_version)
        if not listed:
            raise InvalidInput(f"'{self.view.path}' lists no file of version {pin.version}")
        if pin.hashes:
            listed = [(f, v) for f, v in listed if f.sha256 in pin.hashes]
            if not listed:
                raise InvalidInput(
                    "no file of this version has a sha256 among the requirement's --hash values"
                )
        wheels, sdists = [], []
        for f, version in listed:
            if f.filename.endswith(".whl"):
                try:
                    tags = parse_wheel_filename(f.filename)[3]
                except InvalidWheelFilename:
                    continue
                if targets.wheel_matches(tags):
                    wheels.append(Item(pin.project, version, f.filename, f.sha256))
            else:
                sdists.append(Item(pin.project, version, f.filename, f.sha256))
        chosen = wheels or sdists
        if not chosen:
            raise InvalidInput("no wheel of this version installs on the given platforms")
        return chosen

    async def run(
        self, items: list[Item], on_outcome: Callable[[Outcome], None] | None = None
    ) -> list[Outcome]:
        """Fetch `items`, at most `jobs` at a time; `on_outcome` is told of each as it ends.
        Failures are outcomes, never exceptions: one bad file does not stop the others."""
        gate = asyncio.Semaphore(self.jobs)

        async def one(item: Item) -> Outcome:
            async with gate:
                outcome = await self._fetch(item)
            if on_outcome is not None:
                on_outcome(outcome)
            return outcome

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _fetch(self, item: Item) -> Outcome:
        project = canonicalize_name(item.project)
        try:
            wanted = await self.proxy.locate(self.view, project, item.version, item.filename)
            if item.sha256 is not None and wanted.sha256 != item.sha256:
                listed = wanted.sha256 or "no sha256"
                return Outcome(
                    project,
                    item.filename,
                    "failed",
                    f"the lockfile pins sha256 {item.sha256}, the index lists {listed}",
                    wanted.size,
                )
            # Pinned before it is fetched: a sweep in between must not take it away again (a
            # pin holds for a file not cached yet, and covers its `.metadata`).
            await self._pin(item.filename)
            fetched = await self.proxy.files.ensure(wanted)
            size = wanted.size
            metadata = item.filename + ".metadata"
            try:
                meta = await self.proxy.locate(self.view, project, item.version, metadata)
            except WheelyardError:
                meta = None  # the index offers no PEP 658 metadata for this file
            if meta is not None and meta.sha256 is not None:
                fetched = await self.proxy.files.ensure(meta) or fetched
        except WheelyardError as exc:
            return Outcome(project, item.filename, "failed", exc.message)
        except Exception as exc:  # a store failing: this file fails, the others go on
            log.warning("pre-fetching %s failed", item.filename, exc_info=True)
            return Outcome(
                project, item.filename, "failed", f"internal error ({type(exc).__name__})"
            )
        return Outcome(project, item.filename, "fetched" if fetched else "cached", None, size)

    async def _pin(self, filename: str) -> None:
        async with self.proxy.pages.sessions() as session:
            await begin_write(session)
            await retention.pin_proxy_files(session, self.view.id, [filename], reason="prefetch")
            await session.commit()


@dataclass(frozen=True)
class Summary:
    """Counts of a run's outcomes."""

    fetched: int
    cached: int
    failed: int
    skipped: int
    fetched_bytes: int

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Summary:
        """The summary of `outcomes`."""
        return cls(
            fetched=sum(o.status == "fetched" for o in outcomes),
            cached=sum(o.status == "cached" for o in outcomes),
            failed=sum(o.status == "failed" for o in outcomes),
            skipped=sum(o.status == "skipped" for o in outcomes),
            fetched_bytes=sum(o.size or 0 for o in outcomes if o.status == "fetched"),
        )


async def run_job(
    proxy: ProxyService,
    view: RepositoryView,
    job_id: str,
    locks: list[Lock],
    targets: TargetPlatforms,
) -> None:
    """Run API job `job_id`: plan, fetch, and write the progress to `prefetch_jobs` every
    `HEARTBEAT_EVERY` seconds (with the heartbeat) and the outcomes at the end. Errors end
    the job with the error's message; a cancelled job (shutdown) is left to be reported
    abandoned once its heartbeat is old."""
    sessions = proxy.pages.sessions
    outcomes: list[Outcome] = []
    total = 0

    def progress() -> jobs.Progress:
        summary = Summary.of(outcomes)
        return jobs.Progress(
            total, summary.fetched, summary.cached, summary.failed, summary.skipped
        )

    async def beat() -> None:
        while True:
            await asyncio.sleep(jobs.HEARTBEAT_EVERY)
            with contextlib.suppress(Exception):  # the next beat tries again
                await jobs.report(sessions, job_id, progress())

    beating = asyncio.create_task(beat())
    error: str | None = None
    try:
        prefetcher = Prefetcher(proxy, view)
        plan = await prefetcher.plan(locks, targets)
        outcomes.extend(plan.failed)
        total = len(plan.items) + len(plan.failed)
        await jobs.report(sessions, job_id, progress())
        await prefetcher.run(plan.items, outcomes.append)
    except WheelyardError as exc:
        error = exc.message
    except Exception as exc:
        log.exception("pre-fetch job %s failed", job_id)
        error = f"the job failed: {type(exc).__name__}"
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
    await jobs.report(
        sessions,
        job_id,
        progress(),
        status="done",
        outcomes=[o.as_json() for o in outcomes],
        error=error,
    )
