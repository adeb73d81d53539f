"""Schema migrations: `upgrade_database` brings any supported database to the newest schema.

Alembic's commands are synchronous and its env starts its own event loop, so async callers
run it in a worker thread (`upgrade_database_async`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str, *, schema: str | None = None) -> Config:
    """An Alembic Config for `url`, with no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade_database(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Apply every migration up to `revision` (idempotent)."""
    command.upgrade(alembic_config(url, schema=schema), revision)


def downgrade_database(url: str, revision: str, *, schema: str | None = None) -> None:
    """Revert migrations down to `revision` (`base` for an empty schema)."""
    command.downgrade(alembic_config(url, schema=schema), revision)


async def upgrade_database_async(url: str, *, schema: str | None = None) -> None:
    """`upgrade_database` from async code, off the event loop."""
    await anyio.to_thread.run_sync(lambda: upgrade_database(url, schema=schema))


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) this code knows (read once from the migrations directory)."""
    script = ScriptDirectory.from_config(alembic_config("unused://"))
    return frozenset(script.get_heads())


async def schema_lag(engine: AsyncEngine) -> str | None:
    """None when the database's schema is at this code's newest revision, else what differs
    (the database is behind: migrations not applied yet; or ahead: an older release)."""

    def current(sync_conn: Any) -> frozenset[str]:
        return frozenset(MigrationContext.configure(sync_conn).get_current_heads())

    async with engine.connect() as conn:
        found = await conn.run_sync(current)
    wanted = head_revisions()
    if found == wanted:
        return None
    have = ", ".join(sorted(found)) or "none"
    return (
        f"the database schema is at {have}, this release needs {', '.join(sorted(wanted))} "
        "(run `wheelyard db upgrade`, or start the gateway, which migrates)"
    )
