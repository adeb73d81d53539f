"""Database contract: the schema, migrations and race rules hold on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import importlib
import json
import zlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from wheelyard.shared.config import RepositoryConfig, Settings, UpstreamConfig
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.migrate import downgrade_database, upgrade_database_async
from wheelyard.shared.db.models import (
    File,
    Project,
    ProxyPage,
    Release,
    Repository,
    Storage,
    User,
)
from wheelyard.shared.domain.bootstrap import bootstrap
from wheelyard.shared.domain.hosted import hosted_anywhere
from wheelyard.shared.domain.repositories import apply_repository, ensure_storage, load_repository
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound
from wheelyard.shared.packaging.filenames import parse_dist_filename
from wheelyard.testing.db_fixtures import Database

TABLES = {
    "storages",
    "repositories",
    "upstreams",
    "repository_members",
    "projects",
    "releases",
    "files",
    "users",
    "permissions",
    "api_tokens",
    "audit_events",
    "proxy_pages",
    "proxy_files",
    "proxy_pins",
    "blob_orphans",
    "leases",
    "prefetch_jobs",
    "proxy_seen",
}
T = {"t": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_migrations_create_every_table_and_downgrade_cleanly(database: Database) -> None:
    assert await _tables(database) >= TABLES
    await asyncio.to_thread(downgrade_database, database.url, "base", schema=database.schema)
    assert not (TABLES & await _tables(database))
    await upgrade_database_async(database.url, schema=database.schema)
    await upgrade_database_async(database.url, schema=database.schema)  # idempotent
    assert await _tables(database) >= TABLES


async def _hosted(db: Database, name: str = "local") -> Repository:
    async with db.sessions() as s:
        view = await apply_repository(s, RepositoryConfig(name=name, type="hosted"))
        await s.commit()
        repo = await s.get(Repository, view.id)
        assert repo is not None
        return repo


async def _release(db: Database, repo: Repository) -> tuple[int, int]:
    async with db.sessions() as s:
        project = Project(repository_id=repo.id, name="demo", display_name="Demo")
        s.add(project)
        await s.flush()
        release = Release(project_id=project.id, version="1.0", canonical_version="1")
        s.add(release)
        await s.commit()
        assert project.id and release.id
        return project.id, release.id


def _identity(filename: str) -> str:
    return parse_dist_filename(filename, allow_zip_sdist=True).identity


def _file(repo_id: int, project_id: int, release_id: int, sha: str) -> File:
    return File(
        repository_id=repo_id,
        project_id=project_id,
        release_id=release_id,
        filename="demo-1.0-py3-none-any.whl",
        identity=_identity("demo-1.0-py3-none-any.whl"),
        packagetype="bdist_wheel",
        python_version="py3",
        sha256=sha * 64,
        blake2_256="b" * 64,
        md5="c" * 32,
        size=10,
        blob_key="k",
    )


async def test_concurrent_inserts_of_one_filename_admit_exactly_one(database: Database) -> None:
    repo = await _hosted(database)
    project_id, release_id = await _release(database, repo)
    assert repo.id is not None

    async def insert(i: int) -> bool:
        async with database.sessions() as s:
            s.add(_file(repo.id, project_id, release_id, "0123456789abcdef"[i % 16]))
            try:
                await s.commit()
                return True
            except IntegrityError:
                await s.rollback()
                return False

    results = await asyncio.gather(*(insert(i) for i in range(8)))
    assert results.count(True) == 1
    async with database.sessions() as s:
        rows = (await s.exec(select(File).where(File.repository_id == repo.id))).all()
    assert len(rows) == 1


async def test_one_project_and_one_release_per_name(database: Database) -> None:
    repo = await _hosted(database)
    project_id, _ = await _release(database, repo)
    async with database.sessions() as s:
        s.add(Project(repository_id=repo.id, name="demo", display_name="DEMO"))
        with pytest.raises(IntegrityError):
            await s.commit()
    async with database.sessions() as s:
        s.add(Release(project_id=project_id, version="1.0.0", canonical_version="1"))
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_a_name_is_hosted_anywhere_only_once_a_hosted_repository_has_it(
    database: Database,
) -> None:
    async with database.sessions() as s:
        assert not await hosted_anywhere(s, "demo")
    repo = await _hosted(database, "elsewhere")
    await _release(database, repo)
    async with database.sessions() as s:
        assert await hosted_anywhere(s, "demo")
        assert not await hosted_anywhere(s, "demo2")


async def test_concurrent_ensure_storage_makes_one_row(database: Database) -> None:
    async def ensure() -> int:
        async with database.sessions() as s:
            await begin_write(s)
            storage = await ensure_storage(s, "team")
            await s.commit()
            assert storage.id is not None
            return storage.id

    ids = await asyncio.gather(*(ensure() for _ in range(6)))
    assert len(set(ids)) == 1


async def test_datetimes_come_back_aware_utc_and_json_round_trips(database: Database) -> None:
    repo = await _hosted(database)
    project_id, release_id = await _release(database, repo)
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    async with database.sessions() as s:
        release = await s.get(Release, release_id)
        assert release is not None
        release.core_metadata = {"classifiers": ["A :: B"], "project_urls": {"Home": "https://x"}}
        f = _file(repo.id or 0, project_id, release_id, "a")
        f.upload_time = moment
        s.add_all([release, f])
        await s.commit()
    async with database.sessions() as s:
        got = (await s.exec(select(File))).one()
        rel = await s.get(Release, release_id)
    assert got.upload_time == moment and got.upload_time.tzinfo is not None
    assert rel and rel.core_metadata["project_urls"] == {"Home": "https://x"}


async def test_repositories_with_upstreams_and_ordered_members(database: Database) -> None:
    async with database.sessions() as s:
        await apply_repository(s, RepositoryConfig(name="local", type="hosted"))
        await apply_repository(
            s,
            RepositoryConfig(
                name="pypi",
                type="proxy",
                ttl=60,
                upstreams=[
                    UpstreamConfig(url="http://a.example/simple/"),
                    UpstreamConfig(url="http://b.example/simple/", timeout=3),
                ],
            ),
        )
        group = await apply_repository(
            s,
            RepositoryConfig(
                name="all",
                type="group",
                members=["pypi", "default/local"],
                allow_upstream=["Foo_Bar"],
            ),
        )
        await s.commit()
    assert group.members == ("default/pypi", "default/local")
    assert group.settings["allow_upstream"] == ["foo-bar"]
    async with database.sessions() as s:
        proxy = await load_repository(s, "default", "pypi")
        assert [u.url for u in proxy.upstreams] == [
            "http://a.example/simple/",
            "http://b.example/simple/",
        ]
        assert proxy.upstreams[1].timeout == 3 and proxy.ttl == 60
        with pytest.raises(NotFound):
            await load_repository(s, "default", "nope")
        with pytest.raises(InvalidInput, match="does not exist"):
            await apply_repository(s, RepositoryConfig(name="g2", type="group", members=["ghost"]))
        with pytest.raises(InvalidInput, match="Invalid repository name"):
            await apply_repository(s, RepositoryConfig(name="../etc", type="hosted"))


async def test_changing_the_type_of_a_repository_with_files_is_refused(database: Database) -> None:
    repo = await _hosted(database)
    project_id, release_id = await _release(database, repo)
    async with database.sessions() as s:
        s.add(_file(repo.id or 0, project_id, release_id, "a"))
        await s.commit()
    async with database.sessions() as s:
        with pytest.raises(Conflict, match="orphan"):
            await apply_repository(
                s,
                RepositoryConfig(
                    name="local",
                    type="proxy",
                    upstreams=[UpstreamConfig(url="http://u.example/simple/")],
                ),
            )


async def test_deleting_a_repository_cascades(database: Database) -> None:
    repo = await _hosted(database)
    await _release(database, repo)
    async with database.sessions() as s:
        row = await s.get(Repository, repo.id)
        await s.delete(row)
        await s.commit()
        assert (await s.exec(select(Project))).all() == []
        assert (await s.exec(select(Storage))).one().name == "default"


async def test_bootstrap_is_idempotent_and_keeps_the_password_secret(
    database: Database, tmp_path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", pypi_proxy="http://127.0.0.1:9/")
    async with database.sessions() as s:
        generated = await bootstrap(s, settings)
    assert generated and len(generated) >= 24
    secret_file = settings.data_dir / "admin-password"
    assert secret_file.read_text().strip() == generated
    assert secret_file.stat().st_mode & 0o777 == 0o600
    async with database.sessions() as s:
        assert await bootstrap(s, settings) is None
        users = (await s.exec(select(User))).all()
        all_repo = await load_repository(s, "default", "all")
        pypi = await load_repository(s, "default", "pypi")
    assert [u.username for u in users] == ["admin"] and users[0].is_admin
    assert all_repo.members == ("default/local", "default/pypi")
    assert pypi.upstreams[0].url == "http://127.0.0.1:9/simple/"


async def test_writers_after_a_read_wait_for_each_other(database: Database) -> None:
    """Read-then-write transactions (the upload path) never fail with 'database is locked'."""

    async def register(i: int) -> None:
        async with database.sessions() as s:
            (await s.exec(select(Storage))).all()  # a read first, like authentication
            await begin_write(s)
            await ensure_storage(s, f"st{i}")
            await asyncio.sleep(0.01)
            await s.commit()

    await asyncio.gather(*(register(i) for i in range(12)))
    async with database.sessions() as s:
        assert len((await s.exec(select(Storage))).all()) == 12


async def test_two_spellings_of_one_file_cannot_both_have_a_row(database: Database) -> None:
    """`demo-1.0.0-py3-none-any.whl` is `demo-1.0-py3-none-any.whl` to an installer."""
    repo = await _hosted(database)
    project_id, release_id = await _release(database, repo)
    async with database.sessions() as s:
        s.add(_file(repo.id or 0, project_id, release_id, "a"))
        await s.commit()
    async with database.sessions() as s:
        other = _file(repo.id or 0, project_id, release_id, "b")
        other.filename = "demo-1.0.0-py3-none-any.whl"
        other.identity = _identity(other.filename)
        s.add(other)
        with pytest.raises(IntegrityError):
            await s.commit()


_MIGRATION_0003 = importlib.import_module(
    "wheelyard.shared.db.migrations.versions.0003_file_identity"
)


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0-py3-none-any.whl",
        "demo-v1.0.0-1abc-py3.py2-none-any.whl",
        "demo-1.0a1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "demo-1.0.post1.tar.gz",
        "demo-2.zip",
    ],
)
def test_the_migrations_frozen_identity_agrees_with_the_packaging_code(filename: str) -> None:
    assert _MIGRATION_0003.identity_of(filename) == _identity(filename)


async def test_migration_0003_computes_the_identity_of_existing_files(database: Database) -> None:
    repo = await _hosted(database)
    project_id, release_id = await _release(database, repo)
    await asyncio.to_thread(downgrade_database, database.url, "0002", schema=database.schema)
    names = [
        "demo-1.0-py3-none-any.whl",
        "demo-1.0-py2.py3-none-any.whl",
        "demo-1.0.tar.gz",
        "demo-1.0.0-py3-none-any.whl",  # uploaded before the rule: the same file as the first
        "not a dist name",
    ]
    insert = text(
        "INSERT INTO files (repository_id, project_id, release_id, filename, packagetype, "
        "python_version, sha256, blake2_256, md5, size, upload_time, blob_key) VALUES "
        "(:r, :p, :rel, :f, 'bdist_wheel', 'py3', :sha, 'b', 'c', 1, :t, 'k')"
    )
    async with database.engine.begin() as conn:
        for i, name in enumerate(names):
            await conn.execute(
                insert,
                {
                    "r": repo.id,
                    "p": project_id,
                    "rel": release_id,
                    "f": name,
                    "sha": str(i) * 64,
                    "t": datetime(2026, 1, 1),
                },
            )
    await database.engine.dispose()  # no cached statement may outlive the schema change
    await upgrade_database_async(database.url, schema=database.schema)

    async with database.sessions() as s:
        rows = {f.filename: f for f in (await s.exec(select(File))).all()}
    assert rows["demo-1.0-py3-none-any.whl"].identity == "wheel demo 1 - py3-none-any"
    assert rows["demo-1.0-py2.py3-none-any.whl"].identity == "wheel demo 1 - py2.py3-none-any"
    assert rows["demo-1.0.tar.gz"].identity == "sdist demo 1"
    assert rows["not a dist name"].identity == "file not a dist name"
    newcomer = rows["demo-1.0.0-py3-none-any.whl"]
    assert newcomer.identity == f"wheel demo 1 - py3-none-any #{newcomer.id}"
    # From now on the constraint holds: a third spelling of the first file has no room.
    async with database.sessions() as s:
        third = _file(repo.id or 0, project_id, release_id, "d")
        third.filename = "demo-v1-py3-none-any.whl"
        third.identity = _identity(third.filename)
        s.add(third)
        with pytest.raises(IntegrityError):
            await s.commit()
    await asyncio.to_thread(downgrade_database, database.url, "0002", schema=database.schema)
    await database.engine.dispose()
    async with database.engine.connect() as conn:
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("files"))
    assert "identity" not in {c["name"] for c in columns}


async def test_migration_0004_keeps_rows_converts_pages_and_never_reuses_ids(
    database: Database,
) -> None:
    """From 0002 with data: children survive the SQLite table copy, stored proxy pages are
    split into head and streamed files (and back on downgrade), and after the upgrade a
    deleted repository's id is never given to a new one (issue 9: cache keys use ids)."""
    url, schema = database.url, database.schema
    await asyncio.to_thread(downgrade_database, url, "0002", schema=schema)
    entry = {"filename": "demo-1.0.tar.gz", "upstream_url": "https://u.example/demo-1.0.tar.gz"}
    async with database.engine.begin() as conn:
        await conn.execute(text("INSERT INTO storages (name, created_at) VALUES ('st', :t)"), T)
        for name in ("a", "b", "c"):
            await conn.execute(
                text(
                    "INSERT INTO repositories (storage_id, name, type, visibility, settings,"
                    " created_at) VALUES (1, :n, 'proxy', 'public', '{}', :t)"
                ),
                {"n": name, **T},
            )
        await conn.execute(
            text(
                "INSERT INTO proxy_pages (repository_id, project, data, fetched_at, missing)"
                " VALUES (3, 'demo', :d, :t, false)"
            ),
            {"d": json.dumps({"files": [entry], "versions": ["1.0"], "source": 0}), **T},
        )
    await upgrade_database_async(url, schema=schema)
    async with database.engine.connect() as conn:
        data, files = (
            await conn.execute(text("SELECT data, files FROM proxy_pages WHERE project='demo'"))
        ).one()
        head = json.loads(data) if isinstance(data, str) else data
        assert head["versions"] == ["1.0"] and head["count"] == 1 and head["digest"]
        assert [json.loads(line) for line in zlib.decompress(files).splitlines()] == [entry]
    async with database.sessions() as s:
        row = await s.get(Repository, 3)
        await s.delete(row)
        await s.commit()
        assert (await s.exec(select(ProxyPage))).all() == []  # cascaded
    async with database.sessions() as s:
        view = await apply_repository(s, RepositoryConfig(storage="st", name="d", type="hosted"))
        await s.commit()
    assert view.id > 3
    await upgrade_database_async(url, schema=schema)  # idempotent
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO proxy_pages (repository_id, project, data, fetched_at, missing)"
                " VALUES (2, 'demo', :d, :t, false)"
            ),
            {"d": json.dumps({"files": [entry], "source": 0}), **T},
        )
    await upgrade_database_async(url, schema=schema)
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE proxy_pages SET files = :f, data = :d WHERE repository_id = 2"),
            {"f": zlib.compress(json.dumps(entry).encode() + b"\n"), "d": '{"digest": "x"}'},
        )
    await asyncio.to_thread(downgrade_database, url, "0002", schema=schema)
    async with database.engine.connect() as conn:
        (data,) = (await conn.execute(text("SELECT data FROM proxy_pages"))).one()
        assert (json.loads(data) if isinstance(data, str) else data)["files"] == [entry]
        assert (await conn.execute(text("SELECT count(*) FROM repositories"))).scalar() == 3
