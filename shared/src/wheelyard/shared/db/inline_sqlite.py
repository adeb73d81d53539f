"""SQLite for the async engine without a thread per connection: statements run on the calling
thread (the event loop's), and a statement that finds the database locked by another process
waits on the event loop, not in SQLite (docs/adr/0009-inline-sqlite.md).

aiosqlite, the usual asyncio driver, gives each connection a thread and sends every call
there and back: a BEGIN, a SELECT and a ROLLBACK cost three round trips through a queue and
`call_soon_threadsafe`, about 1.2 ms of CPU on a small VM for work SQLite does in 10 us. An
embedded registry's statements are indexed lookups and short writes on a local file, so they
run where they are issued. What could block the loop for long is waiting for a lock another
process holds (the CLI writing while the server runs): SQLite's own busy handler would sleep
inside the call. Connections are therefore opened with no busy timeout, and a statement that
fails with SQLITE_BUSY is retried after an `asyncio.sleep`, for up to `BUSY_WAIT` seconds in
all (a failed BUSY statement did nothing, so running it again is what the busy handler would
do: https://www.sqlite.org/c3ref/busy_handler.html).

The dialect is pysqlite's (the same SQL, types and pool rules as `sqlite+pysqlite`), marked
async so that `create_async_engine` accepts it; SQLAlchemy's async layer needs every
statement to await once, which the cursor does with a coroutine that does not suspend.
`wheelyard.shared.db.engine.create_engine` uses it for every `sqlite+aiosqlite://` URL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.util.concurrency import await_, in_greenlet

#: The driver name this module registers (`sqlite+<DRIVER>://`).
DRIVER = "wheelyard_inline"
#: Longest a statement waits for another process's lock before the error is raised (the
#: busy timeout aiosqlite connections were given).
BUSY_WAIT = 30.0
#: First and longest pause between two tries of a statement the database was busy for.
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05
#: SQLITE_BUSY and SQLITE_BUSY_RECOVERY: another connection holds the lock, or is recovering
#: the WAL; both pass. (SQLITE_BUSY_SNAPSHOT, a read transaction that can no longer write,
#: does not pass by waiting; it is raised at once.) https://www.sqlite.org/rescode.html
_RETRIED = frozenset({5, 261})


async def _proceed() -> None:
    """An await that does not suspend: SQLAlchemy's async layer requires one per statement."""


def _run(call: Any, *args: Any) -> Any:
    """`call(*args)`, tried again while another process holds the database (module doc)."""
    if not in_greenlet():
        return call(*args)  # a synchronous caller (disposal at exit): nothing to yield to
    await_(_proceed())
    deadline = 0.0
    pause = _FIRST_PAUSE
    while True:
        try:
            return call(*args)
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", None) not in _RETRIED:
                raise
            now = time.monotonic()
            if not deadline:
                deadline = now + BUSY_WAIT
            elif now >= deadline:
                raise
        await_(asyncio.sleep(pause))
        pause = min(pause * 2, _LONGEST_PAUSE)


class InlineCursor:
    """A sqlite3 cursor whose statements wait for other processes' locks on the event loop."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, operation: str, parameters: Any = ()) -> InlineCursor:
        """Run one statement (see `_run`)."""
        _run(self._cursor.execute, operation, parameters)
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Any]) -> InlineCursor:
        """Run one statement per parameter set (see `_run`; a busy database fails the first)."""
        _run(self._cursor.executemany, operation, seq_of_parameters)
        return self

    async def _async_soft_close(self) -> None:
        """What SQLAlchemy's async results call on a driver cursor they are done with: the
        rows are read already, nothing to release early."""

    def __getattr__(self, name: str) -> Any:
        # description, rowcount, lastrowid, arraysize, fetch*, close: sqlite3's own.
        return getattr(self._cursor, name)


class InlineConnection:
    """A sqlite3 connection handing out `InlineCursor`s; everything else is sqlite3's."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def cursor(self) -> InlineCursor:
        """A new cursor."""
        return InlineCursor(self._connection.cursor())

    def execute(self, operation: str, parameters: Any = ()) -> InlineCursor:
        """Run one statement on a new cursor."""
        return self.cursor().execute(operation, parameters)

    @property
    def isolation_level(self) -> str | None:
        """sqlite3's implicit-transaction mode (None: statements as issued)."""
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._connection.isolation_level = value

    def __getattr__(self, name: str) -> Any:
        # commit, rollback, close, create_function, in_transaction...: sqlite3's own.
        return getattr(self._connection, name)


class _Module:
    """The DB-API module the dialect sees: sqlite3, with `connect` handing out inline
    connections (no busy timeout: `_run` waits instead; usable from any thread, as the pool
    may close a connection from another one)."""

    def __init__(self) -> None:
        for name in dir(sqlite3):
            if not name.startswith("__") and name != "connect":
                setattr(self, name, getattr(sqlite3, name))

    def connect(self, *args: Any, **kwargs: Any) -> InlineConnection:
        kwargs["timeout"] = 0
        kwargs["check_same_thread"] = False
        return InlineConnection(sqlite3.connect(*args, **kwargs))


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite's dialect for `create_async_engine`, running statements inline (module doc)."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> Any:
        return _Module()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # As for aiosqlite: a pool whose waits are asyncio's; one shared connection in memory.
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._connection
