"""Schema migrations: `upgrade_database` brings any supported database to the newest schema.

Alembic's commands are synchronous and its env starts its own event loop, so async callers
run it in a worker thread (`upgrade_database_async`).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from alembic import command
from alembic.config import Config

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
