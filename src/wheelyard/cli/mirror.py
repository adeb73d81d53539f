"""`wheelyard mirror prefetch`: fill a proxy repository's cache from lockfiles, on the
configured stores directly (like the operator commands), through the proxy-cache's own fetch
path (`wheelyard.proxy_cache.prefetch`). A running server sees the files at once: they are
ordinary cached files with their `proxy_files` records.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wheelyard.shared.config import load_settings
from wheelyard.shared.errors import WheelyardError

if TYPE_CHECKING:
    from wheelyard.proxy_cache.prefetch import Outcome
    from wheelyard.shared.packaging.lockfiles import Lock, TargetPlatforms

mirror_app = typer.Typer(help="Proxy caches: pre-fetch what lockfiles name.", no_args_is_help=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


class _Progress:
    """A progress bar on a terminal (rich), one plain line per file otherwise (CI logs)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bar = None
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("prefetch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
            )
            self._task = self._bar.add_task("", total=total)
            self._bar.start()

    def __call__(self, outcome: Outcome) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=outcome.filename)
            return
        reason = f": {outcome.reason}" if outcome.reason else ""
        typer.echo(f"[{self.done}/{self.total}] {outcome.status} {outcome.filename}{reason}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@mirror_app.command("prefetch")
def prefetch(
    files: Annotated[
        list[Path],
        typer.Argument(help="pylock.toml, uv.lock or requirements files with == pins."),
    ],
    repository: Annotated[
        str, typer.Option(help="The proxy repository to fill, `storage/repo`.")
    ] = "default/pypi",
    platform: Annotated[
        list[str] | None,
        typer.Option(help="Wheel platform tag for requirements files (repeatable)."),
    ] = None,
    python_version: Annotated[
        str | None, typer.Option(help="Python version X.Y for requirements files.")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, max=32, help="Files fetched at once.")] = 4,
) -> None:
    """Fetch every file the lockfiles name (and its .metadata) into a proxy repository's
    cache, and keep them (pinned). Re-running skips files already cached."""
    from wheelyard.shared.packaging.lockfiles import TargetPlatforms, read_lock

    locks: list[Lock] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"wheelyard: cannot read {path}: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            locks.append(read_lock(text, source=str(path)))
        except WheelyardError as exc:
            typer.echo(f"wheelyard: {exc.message}", err=True)
            raise typer.Exit(2) from exc
    targets = TargetPlatforms(tuple(platform or ()), python_version)
    try:
        failed = asyncio.run(_prefetch(repository, locks, targets, jobs))
    except WheelyardError as exc:
        typer.echo(f"wheelyard: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    if failed:
        raise typer.Exit(1)


async def _prefetch(repository: str, locks: list[Lock], targets: TargetPlatforms, jobs: int) -> int:
    from anyio import to_thread

    from wheelyard.proxy_cache.prefetch import Prefetcher, Summary
    from wheelyard.proxy_cache.service import ProxyService
    from wheelyard.shared.backends import Backends
    from wheelyard.shared.db.migrate import upgrade_database_async
    from wheelyard.shared.domain.directory import RepositoryDirectory
    from wheelyard.shared.domain.repositories import split_path
    from wheelyard.shared.storage.tempdir import claim_temp_dir
    from wheelyard.shared.web.pagecache import PageCache

    storage, name = split_path(repository)
    backends = await Backends.open(load_settings())
    pages = PageCache.over(backends.cache)
    proxy = ProxyService(backends, pages)
    # Like the proxy-cache service: a server starting meanwhile must not sweep our spools.
    claim = await to_thread.run_sync(claim_temp_dir, proxy.files.spool_dir)
    try:
        await upgrade_database_async(backends.settings.effective_database_url)
        view = await RepositoryDirectory(backends.sessions).require(storage, name)
        prefetcher = Prefetcher(proxy, view, jobs=jobs)
        plan = await prefetcher.plan(locks, targets)
        typer.echo(f"prefetch into {view.path}: {len(plan.items)} files")
        progress = _Progress(len(plan.items))
        try:
            outcomes = await prefetcher.run(plan.items, progress)
        finally:
            progress.close()
    finally:
        await proxy.aclose()
        claim.release()
        await backends.close()
    outcomes = plan.failed + outcomes
    summary = Summary.of(outcomes)
    typer.echo(f"fetched: {summary.fetched} ({_size(summary.fetched_bytes)})")
    typer.echo(f"already cached: {summary.cached}")
    typer.echo(f"failed: {summary.failed}")
    for outcome in outcomes:
        if outcome.status == "failed":
            typer.echo(f"  {outcome.filename}: {outcome.reason}")
    if summary.skipped:
        typer.echo(f"skipped (not from an index): {summary.skipped}")
        for outcome in outcomes:
            if outcome.status == "skipped":
                typer.echo(f"  {outcome.filename}: {outcome.reason}")
    return summary.failed
