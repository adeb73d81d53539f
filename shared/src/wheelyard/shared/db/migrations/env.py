"""Alembic environment: runs migrations on the async engine, SQLite or Postgres.

On Postgres an advisory lock serialises concurrent upgrades, so replicas that all upgrade at
start do not race each other.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

from wheelyard.shared.db import models  # noqa: F401  (registers the tables on the metadata)
from wheelyard.shared.db.engine import create_engine

_ADVISORY_LOCK_ID = 0x57_48_45_45_4C  # "WHEEL"


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.attributes["url"]
    schema = context.config.attributes.get("schema")
    engine = create_engine(url, schema=schema, sqlite_foreign_keys=False)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # Foreign keys are off while tables are copied (see create_engine); check that
                # the result still holds every reference before committing it.
                await conn.run_sync(_run)
                broken = (await conn.execute(text("PRAGMA foreign_key_check"))).all()
                if broken:
                    await conn.rollback()
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
                await conn.commit()
                return
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
                await conn.commit()
            try:
                await conn.run_sync(_run)
                await conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK_ID}
                    )
                    await conn.commit()
    finally:
        await engine.dispose()


asyncio.run(_run_online())
