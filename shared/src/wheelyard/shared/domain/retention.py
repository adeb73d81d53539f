"""Retention of proxy caches: pins, and which cached files a sweep removes.

A proxy repository's cache is its `proxy_files` records (the bytes are shared,
content-addressed blobs). Retention removes records, least recently downloaded first, when a
repository holds more than its `cache_max_bytes` or a file was not downloaded for
`cache_max_idle`; it never removes a pinned file (`proxy_pins`: pre-fetched from a lockfile,
or pinned by an administrator) nor a file of the newest version its project's stored page
lists. A removed record only makes the repository fetch the file again on its next request;
the page keeps listing it. The blob itself is left to garbage collection, which deletes it
once no record references it (`domain/blobgc.py`).

Functions here take a session and commit nothing; callers start writes with `begin_write`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.models import ProxyFile, ProxyPin, Repository, utcnow
from wheelyard.shared.domain import blobgc, proxied
from wheelyard.shared.packaging.filenames import listed_version

#: The suffix of a PEP 658 metadata file's name in our URLs: a pin on a file keeps it too.
METADATA_SUFFIX = ".metadata"
#: Rows per statement when pinning many files (bind-parameter limits of SQLite).
_BATCH = 200


def _base_names(filenames: Iterable[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for name in filenames:
        if name.endswith(METADATA_SUFFIX):
            name = name[: -len(METADATA_SUFFIX)]
        if not name or len(name) > 300 or name in seen:
            continue
        seen.add(name)
        names.append(name)
    return names


async def pin_proxy_files(
    session: AsyncSession, repository_id: int, filenames: Iterable[str], *, reason: str = "admin"
) -> int:
    """Pin `filenames` in the proxy repository: retention never removes them (nor their PEP 658
    `.metadata`) until unpinned. A file need not be cached yet: the pin holds once it is.
    Pinning a pinned file changes nothing. Returns how many files were newly pinned."""
    names = _base_names(filenames)
    if not names:
        return 0
    await lock_repository(session, repository_id)
    existing = await pinned_among(session, repository_id, names)
    missing = [n for n in names if n not in existing]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    for start in range(0, len(missing), _BATCH):
        rows = [
            {"repository_id": repository_id, "filename": n, "reason": reason, "pinned_at": now}
            for n in missing[start : start + _BATCH]
        ]
        # A concurrent pin of the same file is the same pin: keep whichever came first.
        await session.exec(insert(ProxyPin).values(rows).on_conflict_do_nothing())
    return len(missing)


async def unpin_proxy_files(
    session: AsyncSession, repository_id: int, filenames: Iterable[str]
) -> int:
    """Remove the pins of `filenames` (retention may then remove the files). Returns how many
    pins were removed; unpinning a file that is not pinned changes nothing."""
    names = _base_names(filenames)
    await lock_repository(session, repository_id)
    removed = 0
    for start in range(0, len(names), _BATCH):
        result = await session.exec(
            delete(ProxyPin).where(
                col(ProxyPin.repository_id) == repository_id,
                col(ProxyPin.filename).in_(names[start : start + _BATCH]),
            )
        )
        removed += result.rowcount or 0
    return removed


async def pinned_among(
    session: AsyncSession, repository_id: int, filenames: Iterable[str]
) -> set[str]:
    """Which of `filenames` (without `.metadata`) are pinned in the repository."""
    names = list(filenames)
    found: set[str] = set()
    for start in range(0, len(names), _BATCH):
        rows = await session.exec(
            select(ProxyPin.filename).where(
                ProxyPin.repository_id == repository_id,
                col(ProxyPin.filename).in_(names[start : start + _BATCH]),
            )
        )
        found.update(rows.all())
    return found


async def pinned_filenames(session: AsyncSession, repository_id: int) -> list[str]:
    """Every pinned filename of the repository, sorted."""
    rows = await session.exec(
        select(ProxyPin.filename)
        .where(ProxyPin.repository_id == repository_id)
        .order_by(col(ProxyPin.filename))
    )
    return list(rows.all())


async def lock_repository(session: AsyncSession, repository_id: int) -> None:
    """Order pins and prunes of one repository (Postgres: a row lock on the repository until
    the transaction ends; SQLite serialises writers already), so a prune never misses a pin
    committed while it runs."""
    await session.exec(
        select(Repository.id).where(Repository.id == repository_id).with_for_update()
    )


@dataclass(frozen=True)
class Rule:
    """A proxy repository's retention: at most `max_bytes` cached, nothing idle (not
    downloaded) for longer than `max_idle`. None means no limit."""

    max_bytes: int | None = None
    max_idle: timedelta | None = None

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Rule:
        """The rule in a repository's settings (`cache_max_bytes`, `cache_max_idle` seconds)."""
        max_bytes = settings.get("cache_max_bytes")
        idle = settings.get("cache_max_idle")
        return cls(
            max_bytes=int(max_bytes) if max_bytes is not None else None,
            max_idle=timedelta(seconds=int(idle)) if idle is not None else None,
        )

    @property
    def limits(self) -> bool:
        """True when the rule removes anything at all."""
        return self.max_bytes is not None or self.max_idle is not None


@dataclass(frozen=True)
class Cached:
    """One cached file of a proxy repository, as retention weighs it."""

    id: int
    project: str
    filename: str
    size: int
    blob_key: str
    last_downloaded: datetime
    pinned: bool
    newest: bool  # of the newest version the project's stored page lists


@dataclass
class Plan:
    """What retention finds in one proxy repository, and what it removes (`remove`, least
    recently downloaded first). `bytes_after` may stay above the limit when pinned and newest
    files alone exceed it: those are never removed."""

    repository_id: int
    rule: Rule
    files: int = 0
    bytes: int = 0
    pinned_files: int = 0
    pinned_bytes: int = 0
    newest_files: int = 0
    remove: list[Cached] = field(default_factory=list)

    @property
    def remove_bytes(self) -> int:
        return sum(f.size for f in self.remove)

    @property
    def bytes_after(self) -> int:
        return self.bytes - self.remove_bytes

    def as_dict(self) -> dict[str, Any]:
        """The figures, for reports."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "pinned_files": self.pinned_files,
            "pinned_bytes": self.pinned_bytes,
            "newest_files": self.newest_files,
            "remove_files": len(self.remove),
            "remove_bytes": self.remove_bytes,
            "bytes_after": self.bytes_after,
        }


def _base(filename: str) -> str:
    return filename[: -len(METADATA_SUFFIX)] if filename.endswith(METADATA_SUFFIX) else filename


def _newest_version(page: proxied.PageContent) -> str | None:
    """The version an installer picks by default from the page: the highest final release not
    yanked (PEP 440, PEP 592), else the highest not yanked, else the highest listed."""
    best: dict[str, tuple[Version, str] | None] = {"final": None, "any": None, "yanked": None}
    for f, version in page.files_and_versions():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        kinds = ["yanked"] if f.yanked else ["any", "yanked"]
        if not f.yanked and not parsed.is_prerelease:
            kinds.append("final")
        for kind in kinds:
            current = best[kind]
            if current is None or parsed > current[0]:
                best[kind] = (parsed, version)
    for kind in ("final", "any", "yanked"):
        chosen = best[kind]
        if chosen is not None:
            return chosen[1]
    return None


async def cached_files(session: AsyncSession, repository_id: int) -> list[Cached]:
    """Every cached file of the proxy repository, with whether it is pinned and whether it is
    of the newest version its project's stored page lists."""
    rows = (
        await session.exec(
            select(  # type: ignore[call-overload]
                ProxyFile.id,
                ProxyFile.project,
                ProxyFile.filename,
                ProxyFile.size,
                ProxyFile.blob_key,
                ProxyFile.last_downloaded,
            ).where(ProxyFile.repository_id == repository_id)
        )
    ).all()
    pins = set(await pinned_filenames(session, repository_id))
    newest: dict[str, str | None] = {}
    for project in sorted({row[1] for row in rows}):
        page = await proxied.load_content(session, repository_id, project)
        newest[project] = _newest_version(page) if page is not None else None
    out = []
    for row_id, project, filename, size, blob_key, last in rows:
        base = _base(filename)
        latest = newest.get(project)
        out.append(
            Cached(
                id=row_id,
                project=project,
                filename=filename,
                size=size,
                blob_key=blob_key,
                last_downloaded=last,
                pinned=base in pins,
                newest=latest is not None and listed_version(base) == latest,
            )
        )
    return out


async def plan(
    session: AsyncSession, repository_id: int, rule: Rule, *, now: datetime | None = None
) -> Plan:
    """What retention removes from the proxy repository under `rule` right now: files idle
    for longer than `max_idle`, then least recently downloaded files until at most
    `max_bytes` are cached; never a pinned file nor one of a project's newest version."""
    now = now or utcnow()
    files = await cached_files(session, repository_id)
    result = Plan(repository_id=repository_id, rule=rule)
    for f in files:
        result.files += 1
        result.bytes += f.size
        if f.pinned:
            result.pinned_files += 1
            result.pinned_bytes += f.size
        elif f.newest:
            result.newest_files += 1
    candidates = sorted(
        (f for f in files if not f.pinned and not f.newest),
        key=lambda f: (f.last_downloaded, f.id),
    )
    total = result.bytes
    for f in candidates:
        idle = rule.max_idle is not None and now - f.last_downloaded > rule.max_idle
        over = rule.max_bytes is not None and total > rule.max_bytes
        if not idle and not over:
            continue
        result.remove.append(f)
        total -= f.size
    return result


async def prune(session: AsyncSession, chosen: Plan, *, blobs_free_after: datetime) -> list[Cached]:
    """Remove the records `chosen` names (in the caller's write transaction), except those
    pinned or downloaded since it was made. The repository then fetches them again on their
    next request; their pages still list them. Their blobs, once nothing references them, are
    left to garbage collection, no earlier than `blobs_free_after` (so downloads still
    streaming them finish). Returns the records removed."""
    if not chosen.remove:
        return []
    repository_id = chosen.repository_id
    await lock_repository(session, repository_id)
    pins = await pinned_among(session, repository_id, {_base(f.filename) for f in chosen.remove})
    removed = []
    for f in chosen.remove:
        if _base(f.filename) in pins:
            continue
        result = await session.exec(
            delete(ProxyFile).where(
                col(ProxyFile.id) == f.id,
                col(ProxyFile.repository_id) == repository_id,
                col(ProxyFile.blob_key) == f.blob_key,
                col(ProxyFile.last_downloaded) <= f.last_downloaded,
            )
        )
        if result.rowcount == 1:
            removed.append(f)
    await blobgc.orphan(session, {f.blob_key for f in removed}, blobs_free_after)
    return removed
