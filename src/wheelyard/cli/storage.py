"""Storage commands on the database and blob store directly (no server needed): the storage
report, pruning proxy caches (retention and garbage collection), pinning cached files.

`cache prune` runs the same sweep as the servers' periodic one, under the same lease: while a
server (or another prune) sweeps, it says so and does nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer

from wheelyard.shared.backends import Backends
from wheelyard.shared.config import format_duration, load_settings
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import maintenance, retention
from wheelyard.shared.domain.repositories import find_repository, split_path
from wheelyard.shared.errors import InvalidInput, NotFound, WheelyardError

cache_app = typer.Typer(help="Proxy caches: retention, pins.", no_args_is_help=True)
T = TypeVar("T")


def _run(work: Callable[[Backends], Awaitable[T]]) -> T:
    async def main() -> T:
        backends = await Backends.open(load_settings())
        try:
            # Imported here: a server that registers these commands never loads Alembic.
            from wheelyard.shared.db.migrate import upgrade_database_async

            await upgrade_database_async(backends.settings.effective_database_url)
            return await work(backends)
        finally:
            await backends.close()

    try:
        return asyncio.run(main())
    except WheelyardError as exc:
        typer.echo(f"wheelyard: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def human(size: int | None) -> str:
    """`size` bytes as people read them (decimal units, as the sizes one writes)."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _grace(backends: Backends) -> timedelta:
    return timedelta(seconds=backends.settings.gc_grace)


async def _proxy_id(backends: Backends, path: str) -> int:
    storage, name = split_path(path, "default")
    async with backends.sessions() as session:
        repo = await find_repository(session, storage, name)
    if repo is None or repo.id is None:
        raise NotFound(f"Repository '{storage}/{name}' does not exist.")
    if repo.type != "proxy":
        raise InvalidInput(f"'{storage}/{name}' is a {repo.type} repository, not a proxy.")
    return repo.id


RepositoryOpt = Annotated[
    str | None, typer.Option("--repository", "-r", help="storage/name (default: every proxy)")
]


@cache_app.command("prune")
def prune(
    repository: RepositoryOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
) -> None:
    """Apply retention (cache_max_bytes, cache_max_idle) to proxy caches now, least recently
    downloaded first, never a pinned file nor one of a project's newest version; then, for a
    whole-registry prune, delete blobs nothing references any more (after WHEELYARD_GC_GRACE)."""

    async def work(backends: Backends) -> maintenance.Sweep:
        only = None
        if repository is not None:
            await _proxy_id(backends, repository)
            only = {"/".join(split_path(repository, "default"))}
        return await maintenance.sweep(
            backends.sessions,
            backends.blobs,
            grace=_grace(backends),
            repositories=only,
            dry_run=dry_run,
        )

    try:
        report = _run(work)
    except maintenance.SweepBusy as busy:
        typer.echo(f"wheelyard: {busy}; nothing done, try again later", err=True)
        raise typer.Exit(3) from busy
    verb = "would remove" if dry_run else "removed"
    for entry in report.repositories:
        figures = entry.as_dict(dry_run=dry_run)
        limit = figures["cache_max_bytes"]
        idle = figures["cache_max_idle_seconds"]
        limits = ", ".join(
            part
            for part in (
                f"max {human(limit)}" if limit is not None else "",
                f"idle {format_duration(idle)}" if idle is not None else "",
            )
            if part
        )
        typer.echo(
            f"{entry.repository}: {figures['files']} files, {human(figures['bytes'])} cached "
            f"({figures['pinned_files']} pinned, {human(figures['pinned_bytes'])}); "
            f"{verb} {figures['removed_files']} files, {human(figures['removed_bytes'])}; "
            f"{human(figures['bytes'] - figures['removed_bytes'])} left"
            + (f" [{limits}]" if limits else " [no limits]")
        )
    if report.collection is not None:
        c = report.collection
        typer.echo(
            f"blobs: {c.blobs} stored, {human(c.bytes)}; {c.unreferenced} unreferenced "
            f"({human(c.unreferenced_bytes)}); {'would delete' if dry_run else 'deleted'} "
            f"{len(c.deleted)} ({human(c.deleted_bytes)}); "
            f"{c.unreferenced - len(c.deleted)} kept until their grace period ends"
        )


def _pin_command(pin: bool) -> Callable[..., None]:
    def command(
        filenames: Annotated[list[str], typer.Argument(help="file names, as in download URLs")],
        repository: Annotated[
            str, typer.Option("--repository", "-r", help="storage/name of a proxy repository")
        ] = "default/pypi",
    ) -> None:
        async def work(backends: Backends) -> int:
            repo_id = await _proxy_id(backends, repository)
            async with backends.sessions() as session:
                await begin_write(session)
                if pin:
                    count = await retention.pin_proxy_files(session, repo_id, filenames)
                else:
                    count = await retention.unpin_proxy_files(session, repo_id, filenames)
                await session.commit()
            return count

        count = _run(work)
        typer.echo(f"{'pinned' if pin else 'unpinned'} {count} file(s) in {repository}")

    return command


cache_app.command("pin", help="Pin files of a proxy repository: retention never removes them.")(
    _pin_command(True)
)
cache_app.command("unpin", help="Unpin files: retention may remove them again.")(
    _pin_command(False)
)


def storage(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    blobs: Annotated[
        bool, typer.Option(help="Also list the blob store for unreferenced blobs.")
    ] = True,
) -> None:
    """Bytes and files per repository, cached and pinned bytes of proxy repositories, and
    what the next sweep would remove."""

    async def work(backends: Backends) -> dict[str, Any]:
        return await maintenance.storage_report(
            backends.sessions, backends.blobs, grace=_grace(backends), blobs_too=blobs
        )

    report = _run(work)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{'repository':<32} {'type':<7} {'files':>8} {'bytes':>10}  next sweep")
    for entry in report["repositories"]:
        line = (
            f"{entry['repository']:<32} {entry['type']:<7} {entry['files']:>8} "
            f"{human(entry['bytes']):>10}"
        )
        if entry["type"] == "proxy":
            nxt = entry["next_sweep"]
            line += (
                f"  pinned {entry['pinned_files']} ({human(entry['pinned_bytes'])}); "
                f"removes {nxt['remove_files']} ({human(nxt['remove_bytes'])})"
            )
        typer.echo(line)
    garbage = report.get("blobs")
    if garbage:
        typer.echo(
            f"blobs: {garbage['blobs']} stored, {human(garbage['bytes'])}; "
            f"{garbage['unreferenced']} unreferenced ({human(garbage['unreferenced_bytes'])}), "
            f"of which the next sweep deletes {garbage['deleted']} "
            f"({human(garbage['deleted_bytes'])})"
        )
