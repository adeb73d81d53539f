"""Persisted proxy pages: the `proxy_pages` table, the truth behind every cached proxy page.

Written by the proxy-cache service; read by it and by the web interface (what a proxy
repository holds, how fresh, which files of a page it fetched), which can also expire an
entry, so both do it the same way.

A row holds the parsed, sanitised page (never upstream markup) in two parts: the head in
`data` (versions, status, serial, which upstream, the page's digest) and the files in `files`,
one compact JSON object per line, zlib-compressed. Nothing ever holds a whole page as Python
objects: `PageWriter` compresses files one by one as the upstream page is parsed, and
`PageContent` decompresses them one by one for rendering or for finding one file, so a page of
100,000 files costs its compressed size (a few MB) plus a chunk at a time.

Rows also hold the validators to revalidate with (ETag, Last-Modified), when the upstream last
confirmed the page, and whether it said 404 (a negative entry, purged once expired). Rows
survive restarts, so pages (and through them cached files) are still served when the upstream
is gone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import ProxyFile, ProxyPage, ProxySeen
from wheelyard.shared.domain.repositories import proxy_state_key
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import SimpleFile

SessionFactory = Callable[[], AsyncSession]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Decompressed bytes handled per step when reading a page's files.
_STEP = 256 * 1024
#: One encoder for every line (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class StoredPage:
    """One row of `proxy_pages` without its files, detached. `version` is the page's digest."""

    project: str
    head: dict[str, Any]
    etag: str | None
    last_modified: str | None
    fetched_at: float  # epoch seconds
    missing: bool

    @property
    def version(self) -> str:
        return str(self.head.get("digest") or "-")

    @property
    def usable(self) -> bool:
        """True when the row holds a page that can be served (stale or not)."""
        return not self.missing and "digest" in self.head

    @property
    def source(self) -> int:
        """Which of the repository's upstreams the page came from."""
        value = self.head.get("source")
        return value if isinstance(value, int) else 0


def _entry(f: SimpleFile, version: str, first_seen: str) -> dict[str, Any]:
    # `filename` first: `PageContent.find` matches lines by their start.
    return {
        "filename": f.filename,
        "upstream_url": f.upstream_url or f.url,
        "sha256": f.sha256,
        "size": f.size,
        "upload_time": f.upload_time.isoformat() if f.upload_time else None,
        "requires_python": f.requires_python,
        "yanked": f.yanked,
        "core_metadata_sha256": f.core_metadata_sha256,
        "has_core_metadata": f.has_core_metadata,
        # Our URL's version segment, worked out once here rather than at every render.
        "version": version,
        # When this repository first listed the file (`proxy_seen`), apart from the upstream's
        # upload time.
        "first_seen": first_seen,
    }


def _file(entry: dict[str, Any]) -> SimpleFile:
    upload_time = entry.get("upload_time")
    first_seen = entry.get("first_seen")
    return SimpleFile(
        filename=entry["filename"],
        url=entry["upstream_url"],
        sha256=entry.get("sha256"),
        size=entry.get("size"),
        upload_time=datetime.fromisoformat(upload_time) if upload_time else None,
        requires_python=entry.get("requires_python"),
        yanked=entry.get("yanked", False),
        core_metadata_sha256=entry.get("core_metadata_sha256"),
        has_core_metadata=bool(entry.get("has_core_metadata")),
        upstream_url=entry["upstream_url"],
        first_seen=datetime.fromisoformat(first_seen) if first_seen else None,
    )


class PageWriter:
    """A page's files compressed as they are parsed (call `add` from the parsing thread).

    `seen` maps the filenames the repository listed before to when it first did (ISO text,
    `seen_times`); a file not in it is first seen at `now`, and its name is kept in
    `new_files` for `save`.
    """

    def __init__(self, seen: dict[str, str] | None = None, now: datetime | None = None) -> None:
        self._compressor = zlib.compressobj(6)
        self._chunks: list[bytes] = []
        self._digest = hashlib.blake2s(digest_size=8)
        self.count = 0
        self._seen = seen or {}
        self.now = now or datetime.now(UTC)
        self._now_text = self.now.isoformat()
        self.new_files: list[str] = []

    def add(self, f: SimpleFile, version: str) -> None:
        """Append one file, with its `listed_version`."""
        first_seen = self._seen.get(f.filename)
        if first_seen is None:
            first_seen = self._now_text
            self.new_files.append(f.filename)
        line = _encode(_entry(f, version, first_seen)).encode() + b"\n"
        self._digest.update(line)
        chunk = self._compressor.compress(line)
        if chunk:
            self._chunks.append(chunk)
        self.count += 1

    def finish(self, head: dict[str, Any], *, drop_files: bool = False) -> tuple[dict, bytes]:
        """The row's `data` (`head` plus the page's digest and file count) and `files`.
        `drop_files` stores none (a quarantined page)."""
        if drop_files:
            digest, count, blob = hashlib.blake2s(digest_size=8), 0, zlib.compress(b"")
        else:
            self._chunks.append(self._compressor.flush())
            digest, count, blob = self._digest.copy(), self.count, b"".join(self._chunks)
        digest.update(json.dumps(head, sort_keys=True).encode())
        return {**head, "digest": digest.hexdigest(), "count": count}, blob


@dataclass(frozen=True)
class PageContent:
    """A stored page with its files, read lazily from the compressed lines."""

    row: StoredPage
    blob: bytes

    @property
    def count(self) -> int:
        """How many files the page lists."""
        value = self.row.head.get("count")
        return value if isinstance(value, int) else 0

    def _lines(self) -> Iterator[bytes]:
        decompressor = zlib.decompressobj()
        pending = b""
        for start in range(0, len(self.blob), _STEP):
            pending += decompressor.decompress(self.blob[start : start + _STEP])
            *lines, pending = pending.split(b"\n")
            yield from lines
        pending += decompressor.flush()
        yield from (line for line in pending.split(b"\n") if line)

    def files(self) -> Iterator[SimpleFile]:
        """Every file, in page order, with `url` and `upstream_url` both the upstream URL."""
        for line in self._lines():
            yield _file(json.loads(line))

    def files_and_versions(self) -> Iterator[tuple[SimpleFile, str]]:
        """Every file with the version segment of its URL (`version_of` its filename)."""
        for line in self._lines():
            entry = json.loads(line)
            f = _file(entry)
            yield f, entry.get("version") or listed_version(f.filename)

    def find(self, filename: str) -> SimpleFile | None:
        """The file called `filename`, or None (only that file's line is decoded)."""
        needle = b'{"filename":' + json.dumps(filename).encode() + b","
        for line in self._lines():
            if line.startswith(needle):
                return _file(json.loads(line))
        return None


def _detach(row: Any) -> StoredPage:
    project, data, etag, last_modified, fetched_at, missing = row
    return StoredPage(
        project=project,
        head=dict(data or {}),
        etag=etag,
        last_modified=last_modified,
        fetched_at=fetched_at.timestamp(),
        missing=missing,
    )


_HEAD_COLUMNS = (
    ProxyPage.project,
    ProxyPage.data,
    ProxyPage.etag,
    ProxyPage.last_modified,
    ProxyPage.fetched_at,
    ProxyPage.missing,
)


# The statements of every cold page are built once, with their values as parameters:
# building one costs more CPU than running it (about 0.3 ms for a two-condition SELECT and
# 1 ms for the upsert of `save`, against 4 us for the SELECT in SQLite, on a small VM);
# SQLAlchemy caches only the compiled form.
_THIS_PAGE = (
    col(ProxyPage.repository_id) == bindparam("repository_id"),
    col(ProxyPage.project) == bindparam("project"),
)
_LOAD = select(*_HEAD_COLUMNS).where(*_THIS_PAGE)  # type: ignore[call-overload]
_LOAD_CONTENT = select(*_HEAD_COLUMNS, ProxyPage.files).where(*_THIS_PAGE)  # type: ignore[call-overload]
_SEEN_TIMES = select(ProxySeen.filename, ProxySeen.first_seen).where(
    col(ProxySeen.repository_id) == bindparam("repository_id"),
    col(ProxySeen.project) == bindparam("project"),
)


async def load(session: AsyncSession, repository_id: int, project: str) -> StoredPage | None:
    """The stored page of `project` (normalized) in the proxy repository, without its files."""
    params = {"repository_id": repository_id, "project": project}
    row = (await session.exec(_LOAD, params=params)).first()
    return _detach(row) if row is not None else None


async def load_content(
    session: AsyncSession, repository_id: int, project: str
) -> PageContent | None:
    """The stored page of `project` with its files, or None when there is no usable one."""
    params = {"repository_id": repository_id, "project": project}
    row = (await session.exec(_LOAD_CONTENT, params=params)).first()
    if row is None:
        return None
    page = _detach(row[:6])
    blob = row[6]
    if not page.usable or blob is None:
        return None
    return PageContent(page, blob)


async def save(
    sessions: SessionFactory,
    repository_id: int,
    project: str,
    *,
    data: dict[str, Any] | None,
    files: bytes | None = None,
    etag: str | None,
    last_modified: str | None,
    fetched_at: float,
    missing: bool,
    new_files: Sequence[str] = (),
    seen_at: datetime | None = None,
) -> bool:
    """Store a fetch result: the head `data` and compressed `files` of a `PageWriter`.
    `data=None` keeps the stored page (a 304, a lower serial, a 404). True when the row now
    holds this result.

    `new_files` (a `PageWriter`'s, listed for the first time at `seen_at`) are remembered
    in the same transaction (see `_insert_seen`), even when the page itself is not replaced.

    An answer fetched earlier than the stored one never replaces it (two replicas that raced
    past the lock, or a slow fetch finishing after a fast one): False then.
    """
    if new_files and seen_at is None:
        raise ValueError("new_files need the time they were first seen (seen_at)")
    params: dict[str, Any] = {
        "repository_id": repository_id,
        "project": project,
        "etag": etag,
        "last_modified": last_modified,
        "fetched_at": datetime.fromtimestamp(fetched_at, UTC),
        "missing": missing,
        "data": data if data is not None else {},  # a new row without a page: an empty head
    }
    if data is not None:
        params["files"] = files
    async with sessions() as session:
        await begin_write(session)
        if new_files and seen_at is not None:
            await _insert_seen(session, repository_id, project, new_files, seen_at)
        result = await session.exec(_upsert(_dialect(session), data is not None), params=params)
        await session.commit()
    return bool(result.rowcount)


#: What `save` always writes; with a page also `data` and `files`.
_VALIDATORS = ("etag", "last_modified", "fetched_at", "missing")


@functools.cache
def _upsert(dialect: str, with_page: bool) -> Any:
    """`save`'s one statement, whether the row exists or not (SQLite >= 3.24 and Postgres
    upserts): a new row gets the parameters, an existing one takes `_VALIDATORS` (and the
    page, `with_page`) only from a later answer."""
    table = ProxyPage.__table__  # type: ignore[attr-defined]
    replaced = (*_VALIDATORS, "data", "files") if with_page else _VALIDATORS
    inserted = ("repository_id", "project", "data", *(c for c in replaced if c != "data"))
    statement = _insert_for(dialect)(table).values(
        {name: bindparam(name, type_=table.c[name].type) for name in inserted}
    )
    return statement.on_conflict_do_update(
        index_elements=["repository_id", "project"],
        set_={name: statement.excluded[name] for name in replaced},
        where=table.c.fetched_at <= statement.excluded.fetched_at,
    )


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def _insert_for(dialect: str) -> Any:
    """The INSERT construct with ON CONFLICT clauses for `dialect`."""
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def expire(sessions: SessionFactory, cache: Cache, repository_id: int, project: str) -> bool:
    """Make the next request refetch `project` in full (no validators), in every process:
    the row is aged and the cached page state dropped. False if nothing was stored."""
    async with sessions() as session:
        await begin_write(session)
        result = await session.exec(
            update(ProxyPage)
            .where(col(ProxyPage.repository_id) == repository_id, col(ProxyPage.project) == project)
            .values(fetched_at=EPOCH, etag=None, last_modified=None)
        )
        await session.commit()
    await cache.delete(proxy_state_key(repository_id, project))
    return bool(result.rowcount)


async def seen_times(session: AsyncSession, repository_id: int, project: str) -> dict[str, str]:
    """When the repository first listed each file of `project` it ever listed (ISO text)."""
    params = {"repository_id": repository_id, "project": project}
    rows = await session.exec(_SEEN_TIMES, params=params)
    return {filename: when.isoformat() for filename, when in rows.all()}


#: Rows inserted per statement by `_insert_seen`.
_SEEN_BATCH = 500


async def _insert_seen(
    session: AsyncSession,
    repository_id: int,
    project: str,
    filenames: Sequence[str],
    when: datetime,
) -> None:
    """Remember that the repository first listed `filenames` at `when`, in `session`'s write
    transaction; a name recorded meanwhile (another replica) keeps its earlier time."""
    insert = _insert_for(_dialect(session))
    for start in range(0, len(filenames), _SEEN_BATCH):
        rows = [
            {
                "repository_id": repository_id,
                "project": project,
                "filename": name,
                "first_seen": when,
            }
            for name in filenames[start : start + _SEEN_BATCH]
        ]
        # Rows as parameters of one statement (executemany), not in it: SQLAlchemy cannot
        # reuse the compiled form of an INSERT with its rows inlined, and compiled it again
        # for every cold page (about 1 ms of CPU each).
        table = ProxySeen.__table__  # type: ignore[attr-defined]
        await session.exec(  # a Core INSERT: the ORM's bulk machinery adds nothing here
            insert(table).on_conflict_do_nothing(index_elements=["repository_id", "filename"]),
            params=rows,
        )


async def cached_projects(session: AsyncSession, repository_id: int) -> list[str]:
    """Normalized names of the projects this proxy repository holds a good page for."""
    rows = await session.exec(
        select(ProxyPage.project)
        .where(ProxyPage.repository_id == repository_id, col(ProxyPage.missing).is_(False))
        .order_by(col(ProxyPage.project))
    )
    return list(rows.all())


async def purge_expired_negatives(sessions: SessionFactory, older_than: float) -> int:
    """Delete negative entries (upstream 404s) confirmed before `older_than` (epoch seconds):
    anonymous lookups of unknown names must not grow the database. Returns how many."""
    when = datetime.fromtimestamp(older_than, UTC)
    async with sessions() as session:
        await begin_write(session)
        result = await session.exec(
            delete(ProxyPage).where(
                col(ProxyPage.missing).is_(True), col(ProxyPage.fetched_at) < when
            )
        )
        await session.commit()
        return int(result.rowcount or 0)


@dataclass(frozen=True)
class CachedEntry:
    """One stored page of a proxy repository, as the web interface lists it."""

    project: str
    fetched_at: datetime
    missing: bool

    def fresh(self, ttl: float, now: datetime) -> bool:
        """True while the page is served without asking the upstream (`ttl` in seconds)."""
        return (now - self.fetched_at).total_seconds() < ttl


async def cached_entries(
    session: AsyncSession, repository_id: int, *, offset: int, limit: int
) -> tuple[int, list[CachedEntry]]:
    """(how many pages the proxy repository stores, one page of them by project name),
    negative entries (upstream 404s) included. The page data itself is not loaded."""
    total = (
        await session.exec(
            select(func.count(col(ProxyPage.id))).where(ProxyPage.repository_id == repository_id)
        )
    ).one()
    rows = await session.exec(
        select(ProxyPage.project, ProxyPage.fetched_at, ProxyPage.missing)
        .where(ProxyPage.repository_id == repository_id)
        .order_by(col(ProxyPage.project))
        .offset(offset)
        .limit(limit)
    )
    return int(total), [CachedEntry(*row) for row in rows.all()]


async def cached_counts(session: AsyncSession, repository_ids: Iterable[int]) -> dict[int, int]:
    """Projects with a good stored page, per proxy repository id."""
    ids = list(repository_ids)
    if not ids:
        return {}
    rows = await session.exec(
        select(ProxyPage.repository_id, func.count(col(ProxyPage.id)))
        .where(col(ProxyPage.repository_id).in_(ids), col(ProxyPage.missing).is_(False))
        .group_by(col(ProxyPage.repository_id))
    )
    return {repo: int(count) for repo, count in rows.all()}


async def fetched_files(session: AsyncSession, repository_id: int, project: str) -> set[str]:
    """Filenames of `project` whose bytes the proxy repository fetched and verified itself
    (`proxy_files`): the only files it serves from storage. A blob merely present in the
    shared, content-addressed store says nothing (another repository may hold it)."""
    rows = await session.exec(
        select(ProxyFile.filename).where(
            ProxyFile.repository_id == repository_id, ProxyFile.project == project
        )
    )
    return set(rows.all())
