"""SQLite statements run on the event loop (wheelyard.shared.db.inline_sqlite): a lock held by
another process is waited for without stopping the loop, and given up after BUSY_WAIT."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from wheelyard.shared.db import inline_sqlite
from wheelyard.shared.db.engine import begin_write, create_engine, session_factory


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (n INTEGER)"))
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def another_process_writing(engine: AsyncEngine, seconds: float) -> AsyncIterator[None]:
    """Inside: another connection (as the CLI would) holds the write lock for `seconds`,
    having inserted 1; on leaving, it has committed."""
    path = engine.url.database
    assert path is not None
    held = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, seconds, held))
    holder.start()
    try:
        await asyncio.to_thread(held.wait, 5)
        yield
    finally:
        holder.join()


def hold_write_lock(path: str, seconds: float, held: threading.Event) -> None:
    """What another process (the CLI) does: take the write lock and keep it a while."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")
        held.set()
        threading.Event().wait(seconds)
        other.execute("COMMIT")
    finally:
        other.close()


async def test_the_engine_runs_statements_inline(engine: AsyncEngine) -> None:
    assert engine.dialect.driver == inline_sqlite.DRIVER
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 40 + 2"))).scalar_one() == 42


async def test_a_writer_waits_for_another_process_without_stopping_the_loop(
    engine: AsyncEngine,
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        async with another_process_writing(engine, 0.5), session_factory(engine)() as session:
            await begin_write(session)  # BEGIN IMMEDIATE: busy until the other commits
            await session.exec(text("INSERT INTO t VALUES (2)"))  # type: ignore[call-overload]
            await session.commit()
    finally:
        ticker.cancel()
    # The loop ran while the writer waited (about 0.5 s: some 50 ticks; a blocked loop, none).
    assert ticks >= 10
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT n FROM t ORDER BY n"))).scalars().all()
    assert rows == [1, 2]


async def test_a_lock_held_past_the_wait_is_a_clear_error(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sqlite, "BUSY_WAIT", 0.2)
    async with another_process_writing(engine, 1.0):
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t VALUES (3)"))
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT n FROM t"))).scalars().all()
    assert rows == [1]  # nothing of the failed write, the other's write kept


async def test_a_session_is_closed_in_place_and_its_connection_back_at_once(
    engine: AsyncEngine,
) -> None:
    """`InlineSession`: leaving `async with` closes the session without a turn of the event
    loop (SQLAlchemy's own close runs in a task of its own, which on a busy loop kept the
    connection out), and the connection is back in the pool."""
    sessions = session_factory(engine)
    loop_turned = False

    def turned() -> None:
        nonlocal loop_turned
        loop_turned = True

    async with sessions() as session:
        assert (await session.exec(text("SELECT 1"))).scalar() == 1  # type: ignore[call-overload]
        assert engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_soon(turned)
    assert not loop_turned
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # A write still takes SQLite's write lock up front (BEGIN IMMEDIATE, sent to the driver).
    async with sessions() as session:
        await begin_write(session)
        await session.exec(text("INSERT INTO t VALUES (2)"))  # type: ignore[call-overload]
        await session.commit()
    async with sessions() as session:
        rows = (await session.exec(text("SELECT n FROM t"))).all()  # type: ignore[call-overload]
    assert [tuple(r) for r in rows] == [(2,)]
