"""The schema as a running server sees it, without Alembic in the process.

A server needs to know two things about migrations: whether the database is at this code's
newest revision (readiness, and whether to migrate at start), and how to get it there. Neither
needs Alembic loaded for the rest of the process's life: the newest revisions are read from the
version files' source (`revision` / `down_revision` assignments, never executed), the
database's from the `alembic_version` table, and an upgrade runs in a child Python process
(`python -m wheelyard.shared.db.migrate`), so that the server keeps none of what Alembic,
Mako and the migration scripts leave behind once the schema is current.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
#: Alembic's default version table (env.py keeps the default name and schema).
VERSION_TABLE = "alembic_version"


class MigrationFailed(RuntimeError):
    """The child process that upgrades the schema did not finish successfully."""


def _assigned(tree: ast.Module, name: str) -> Any:
    for node in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id == name and value is not None:
            return ast.literal_eval(value)
    raise ValueError(f"no literal `{name} = ...` assignment")


@functools.cache
def head_revisions(versions: Path = VERSIONS_DIR) -> frozenset[str]:
    """The newest revision(s) this code knows: every revision no other one names as its
    `down_revision` (Alembic's definition of a head), read from the version files' source."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        try:
            revision = _assigned(tree, "revision")
            down = _assigned(tree, "down_revision")
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from exc
        revisions.add(str(revision))
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, list | tuple):
            parents.update(str(d) for d in down)
    return frozenset(revisions - parents)


async def current_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revision(s) the database is at; empty when it was never migrated."""

    def read(sync_conn: Any) -> frozenset[str]:
        if not inspect(sync_conn).has_table(VERSION_TABLE):
            return frozenset()
        rows = sync_conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
        return frozenset(str(row[0]) for row in rows)

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def schema_lag(engine: AsyncEngine) -> str | None:
    """None when the database's schema is at this code's newest revision, else what differs
    (the database is behind: migrations not applied yet; or ahead: an older release)."""
    found = await current_revisions(engine)
    wanted = head_revisions()
    if found == wanted:
        return None
    have = ", ".join(sorted(found)) or "none"
    return (
        f"the database schema is at {have}, this release needs {', '.join(sorted(wanted))} "
        "(run `wheelyard db upgrade`, or start the gateway, which migrates)"
    )


async def upgrade_in_child(
    url: str,
    *,
    schema: str | None = None,
    log_level: str = "info",
    log_format: str = "json",
) -> None:
    """Upgrade the database at `url` to the newest schema in a child Python process.

    The URL travels on the child's standard input, never on its command line or in its
    environment (both are readable by other users through /proc). The child logs to this
    process's standard error. Raises MigrationFailed when the child does not succeed.
    """
    request = json.dumps(
        {"url": url, "schema": schema, "log_level": log_level, "log_format": log_format}
    ).encode()
    # -P: the working directory is not put on the child's module path.
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "wheelyard.shared.db.migrate", stdin=asyncio.subprocess.PIPE
    )
    await child.communicate(request)
    if child.returncode != 0:
        raise MigrationFailed(
            f"upgrading the database schema failed (the migration process exited with "
            f"{child.returncode}; its error is logged above)"
        )


async def ensure_schema(
    engine: AsyncEngine, url: str, *, log_level: str = "info", log_format: str = "json"
) -> None:
    """Bring the database behind `engine` (reachable at `url`) to the newest schema: nothing
    to do when it is already there (a restart), else `upgrade_in_child`."""
    if await schema_lag(engine) is None:
        return
    await upgrade_in_child(url, log_level=log_level, log_format=log_format)
