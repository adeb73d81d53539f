"""The async engine and session factory, tuned per backend.

SQLite (embedded) gets WAL and foreign keys, runs its statements on the event loop
(`inline_sqlite`: no thread per connection, and a lock held by another process is waited for
on the loop), and concurrent writers of a process take turns (every transaction that writes
starts with `begin_write`); Postgres gets pre-ping and a short pool timeout so an outage
becomes a fast 503, not a hang.
"""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db import inline_sqlite

registry.register(
    f"sqlite.{inline_sqlite.DRIVER}",
    inline_sqlite.__name__,
    inline_sqlite.InlineSQLiteDialect.__name__,
)

#: How long a writer waits for its turn (as long as for another process's lock).
WRITE_WAIT = inline_sqlite.BUSY_WAIT
#: The writers' lock of each SQLite engine (see `begin_write`).
_writer_locks: WeakKeyDictionary[Engine, asyncio.Lock] = WeakKeyDictionary()
_HOLDS_WRITER_LOCK = "wheelyard_holds_writer_lock"


def create_engine(
    url: str, *, schema: str | None = None, sqlite_foreign_keys: bool = True, **kwargs: Any
) -> AsyncEngine:
    """Create the async engine for `url` (`sqlite+aiosqlite://` or `postgresql+asyncpg://`).

    A SQLite URL is served by `inline_sqlite` whatever driver it names: `sqlite+aiosqlite://`
    stays the documented spelling (settings written for earlier releases keep working).

    `schema` (Postgres only) sets the search_path: tests use it to isolate runs in one database.
    `sqlite_foreign_keys=False` is for migrations only: SQLite changes a table by copying it,
    and with foreign keys on, dropping the old copy would cascade to every referencing row
    (https://www.sqlite.org/lang_altertable.html#otheralter, step 1).
    """
    if url.startswith("sqlite"):
        inline = make_url(url).set(drivername=f"sqlite+{inline_sqlite.DRIVER}")
        engine = create_async_engine(inline, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # We emit BEGIN ourselves (below): the driver's implicit transactions break
            # SAVEPOINTs and cannot take the write lock up front.
            # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if sqlite_foreign_keys else 'OFF'}")
            # No busy timeout (SQLite would sleep inside the call, on the event loop):
            # inline_sqlite waits for other processes' locks on the loop instead.
            cursor.close()

        # Writers of this process take turns on an asyncio lock before BEGIN IMMEDIATE (see
        # `begin_write`), released when their transaction ends, whichever way it ends.
        lock = _writer_locks[engine.sync_engine] = asyncio.Lock()

        @event.listens_for(engine.sync_engine, "commit")
        @event.listens_for(engine.sync_engine, "rollback")
        def _sqlite_end(conn: Any) -> None:
            if conn.info.pop(_HOLDS_WRITER_LOCK, False):
                lock.release()

        @event.listens_for(engine.sync_engine.pool, "checkin")
        def _sqlite_returned(_dbapi_conn: Any, record: Any) -> None:
            # A connection back in the pool without a commit or rollback event (its session
            # was dropped unclosed): the pool rolled it back, so the turn ends here.
            if record is not None and record.info.pop(_HOLDS_WRITER_LOCK, False):
                lock.release()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A transaction that reads and then writes must hold the write lock from the start,
            # or SQLite fails it with SQLITE_BUSY_SNAPSHOT, which no waiting cures (upgrading a
            # read lock could deadlock: https://www.sqlite.org/rescode.html#busy_snapshot).
            immediate = conn.get_execution_options().get("wheelyard_write", False)
            # Straight to the driver (inline_sqlite: it still waits out another process's
            # lock): SQLAlchemy's exec_driver_sql builds a whole execution context for it,
            # which cost more than the statement, once per session.
            conn.connection.dbapi_connection.execute(
                "BEGIN IMMEDIATE" if immediate else "BEGIN"
            ).close()

        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 5)
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


class InlineSession(AsyncSession):
    """A session on an `inline_sqlite` engine, closed in the task that used it.

    SQLAlchemy closes a session that leaves `async with` in a task of its own, shielded, so
    that a cancellation cannot abandon the close halfway (`sqlalchemy.ext.asyncio.base.
    _run_to_completion`): on a busy event loop that kept the connection checked out, and the
    caller waiting, for two turns of the loop (a median of 4-11 ms per session during a cold
    uv resolution through the proxy, all 15 of the pool's connections out at times and 170
    opened for 540 sessions). On an inline SQLite connection the close runs its ROLLBACK on
    the calling thread without suspending, so no cancellation can arrive halfway: it runs
    here, at once (docs/adr/0009-inline-sqlite.md, amendment).
    """

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no implicit refresh I/O); on
    SQLite, `InlineSession`s."""
    inline = engine.dialect.driver == inline_sqlite.DRIVER
    kind = InlineSession if inline else AsyncSession
    return async_sessionmaker(engine, class_=kind, expire_on_commit=False)


async def begin_write(session: AsyncSession) -> None:
    """Start `session`'s transaction as a writer (SQLite: BEGIN IMMEDIATE; Postgres: as usual).

    Call before the first statement of a transaction that will write, so concurrent writers
    wait for each other instead of failing. A read transaction already open on the session
    (authentication reads the users table first) is ended: it wrote nothing, and the write
    transaction must start on a fresh connection to take the lock up front.
    """
    if session.in_transaction():
        await session.commit()
    bind = session.bind
    lock = _writer_locks.get(bind.sync_engine) if isinstance(bind, AsyncEngine) else None
    if lock is None:
        await session.connection(execution_options={"wheelyard_write": True})
        return
    # SQLite: one writer at a time, and a writer that finds the lock taken sleeps between tries
    # (SQLite's busy handler: 1 ms, 2, 5, 10 ... 100 ms, sqlite3.c sqliteDefaultBusyCallback;
    # inline_sqlite's alike) and misses most releases: forty concurrent cold pages took 17 ms
    # each instead of 9.
    # Waiting here instead, in line, hands the lock over at once. Another process's lock (the
    # CLI's) is waited for by inline_sqlite.
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives as the lock is granted (python/cpython#86296), and a background task then
        # never stops.
        async with asyncio.timeout(WRITE_WAIT):
            await lock.acquire()
    except TimeoutError:
        raise OperationalError(
            "BEGIN IMMEDIATE", None, Exception(f"no write turn within {WRITE_WAIT:g} s")
        ) from None
    try:
        connection = await session.connection(execution_options={"wheelyard_write": True})
    except BaseException:
        lock.release()
        raise
    connection.sync_connection.info[_HOLDS_WRITER_LOCK] = True  # type: ignore[union-attr]
