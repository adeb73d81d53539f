"""Retention's tables on SQLite and Postgres: pins."""

from __future__ import annotations

from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain.repositories import apply_repository
from wheelyard.shared.domain.retention import (
    pin_proxy_files,
    pinned_among,
    pinned_filenames,
    unpin_proxy_files,
)
from wheelyard.testing.db_fixtures import Database


async def _proxy(db: Database, name: str = "pypi") -> int:
    async with db.sessions() as s:
        view = await apply_repository(
            s,
            RepositoryConfig(
                name=name, type="proxy", upstreams=[UpstreamConfig(url="http://127.0.0.1:9/")]
            ),
        )
        await s.commit()
        return view.id


async def test_pins_are_idempotent_per_repository_and_cover_metadata(database: Database) -> None:
    repo = await _proxy(database)
    other = await _proxy(database, "other")
    async with database.sessions() as s:
        await begin_write(s)
        names = ["a-1.0-py3-none-any.whl", "a-1.0-py3-none-any.whl.metadata", "b-2.0.tar.gz"]
        assert await pin_proxy_files(s, repo, names, reason="prefetch") == 2
        await s.commit()
    async with database.sessions() as s:
        await begin_write(s)
        assert await pin_proxy_files(s, repo, ["b-2.0.tar.gz", "c-1.tar.gz"]) == 1
        await s.commit()
    async with database.sessions() as s:
        assert await pinned_filenames(s, repo) == [
            "a-1.0-py3-none-any.whl",
            "b-2.0.tar.gz",
            "c-1.tar.gz",
        ]
        assert await pinned_filenames(s, other) == []
        assert await pinned_among(s, repo, ["a-1.0-py3-none-any.whl", "zz.whl"]) == {
            "a-1.0-py3-none-any.whl"
        }
    async with database.sessions() as s:
        await begin_write(s)
        assert await unpin_proxy_files(s, repo, ["b-2.0.tar.gz", "nope.whl"]) == 1
        assert await unpin_proxy_files(s, other, ["a-1.0-py3-none-any.whl"]) == 0
        await s.commit()
    async with database.sessions() as s:
        assert await pinned_filenames(s, repo) == ["a-1.0-py3-none-any.whl", "c-1.tar.gz"]
