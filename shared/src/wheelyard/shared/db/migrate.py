"""Schema migrations: `upgrade_database` brings any supported database to the newest schema.

Alembic's commands are synchronous and its env starts its own event loop, so async callers
run it in a worker thread (`upgrade_database_async`). A server does not import this module: it
checks the schema and upgrades it in a child process (`wheelyard.shared.db.schema`), which
runs `main` here.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import anyio
from alembic import command
from alembic.config import Config

from wheelyard.shared.logs import configure_logging

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


def main() -> None:
    """`python -m wheelyard.shared.db.migrate`: upgrade the database named on standard input
    (JSON: url, schema, log_level, log_format), as `wheelyard.shared.db.schema` asks a child
    process to, so that the server itself never imports Alembic."""
    request = json.load(sys.stdin)
    configure_logging(request.get("log_level", "info"), request.get("log_format", "json"))
    try:
        upgrade_database(request["url"], schema=request.get("schema"))
    except Exception:
        logging.getLogger(__name__).exception("upgrading the database schema failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
