"""Database fixtures: every database test runs on SQLite and on Postgres.

Postgres comes from `WHEELYARD_TEST_DATABASE_URL` (default the local `test` database); each test
gets its own schema, migrated from scratch, and dropped afterwards. An unreachable Postgres
fails the test: the backend suites must run in CI, never be skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import create_engine, session_factory
from wheelyard.shared.db.migrate import upgrade_database_async

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://127.0.0.1:5432/test"


def postgres_test_url() -> str:
    """The Postgres URL the tests use."""
    return os.environ.get("WHEELYARD_TEST_DATABASE_URL", DEFAULT_POSTGRES_URL)


def _libpq_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


async def create_schema(url: str) -> str:
    """Create a fresh, uniquely named schema in the Postgres database at `url`."""
    schema = "wy_test_" + uuid.uuid4().hex[:12]
    try:
        conn = await asyncpg.connect(_libpq_dsn(url), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"Postgres is not reachable at {url} ({exc}); start it or set "
            "WHEELYARD_TEST_DATABASE_URL (the database tests must not be skipped)"
        )
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema


async def drop_schema(url: str, schema: str) -> None:
    """Drop a schema made by `create_schema`, with everything in it."""
    conn = await asyncpg.connect(_libpq_dsn(url), timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def create_database() -> tuple[str, str]:
    """Create a fresh Postgres database next to the test one: (server URL, database name)."""
    url = postgres_test_url()
    name = "wy_it_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(_libpq_dsn(url), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url, name


async def drop_database(url: str, name: str) -> None:
    """Drop a database made by `create_database`, even with connections still open."""
    conn = await asyncpg.connect(_libpq_dsn(url), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Database:
    """A migrated, empty database for one test."""

    kind: str
    url: str
    schema: str | None
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly migrated database, once on SQLite and once on Postgres."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/test.db"
    else:
        url = postgres_test_url()
        schema = await create_schema(url)
    try:
        await upgrade_database_async(url, schema=schema)
        engine = create_engine(url, schema=schema)
        try:
            yield Database(request.param, url, schema, engine, session_factory(engine))
        finally:
            await engine.dispose()
    finally:
        if schema:
            await drop_schema(url, schema)
