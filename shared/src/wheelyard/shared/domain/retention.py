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

from collections.abc import Iterable

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.models import ProxyPin, utcnow

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
