"""The server's view of the schema without Alembic: the newest revisions read from the version
files' source agree with Alembic's own, and an upgrade runs in a child process only when the
database lags."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from wheelyard.shared.db import schema
from wheelyard.shared.db.engine import create_engine
from wheelyard.shared.db.migrate import alembic_config


def test_the_newest_revisions_are_alembics_heads() -> None:
    script = ScriptDirectory.from_config(alembic_config("unused://"))
    assert schema.head_revisions() == frozenset(script.get_heads())


def test_a_branch_point_has_both_heads(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision: str = "b"\ndown_revision = "a"\n')
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')
    (tmp_path / "d.py").write_text('revision = "d"\ndown_revision = ("b", "x")\n')
    assert schema.head_revisions(tmp_path) == frozenset({"c", "d"})


def test_a_version_file_without_a_literal_revision_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("revision = make()\ndown_revision = None\n")
    with pytest.raises(ValueError, match=r"bad\.py"):
        schema.head_revisions(tmp_path)


async def test_a_lagging_database_is_upgraded_in_a_child_and_then_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    engine = create_engine(url)
    try:
        assert await schema.current_revisions(engine) == frozenset()
        assert "none" in (await schema.schema_lag(engine) or "")
        await schema.ensure_schema(engine, url)
        assert await schema.current_revisions(engine) == schema.head_revisions()
        assert await schema.schema_lag(engine) is None

        async def no_child(*args: object, **kwargs: object) -> None:
            raise AssertionError("a current schema must not start a migration process")

        monkeypatch.setattr(schema, "upgrade_in_child", no_child)
        await schema.ensure_schema(engine, url)
    finally:
        await engine.dispose()


async def test_a_failing_migration_process_is_reported(tmp_path: Path) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "db.sqlite").mkdir()
    with pytest.raises(schema.MigrationFailed, match="exited with 1"):
        await schema.upgrade_in_child(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
