"""The async engine and session factory, tuned per backend.

SQLite (embedded) gets WAL, foreign keys and a busy timeout so concurrent writers wait instead
of failing; Postgres gets pre-ping and a short pool timeout so an outage becomes a fast 503,
not a hang.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def create_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for `url` (`sqlite+aiosqlite://` or `postgresql+asyncpg://`).

    `schema` (Postgres only) sets the search_path: tests use it to isolate runs in one database.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 5)
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no implicit refresh I/O)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
