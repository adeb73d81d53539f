"""Storages and repositories: lookup, creation and reconciliation with declared configuration.

Used by the gateway (routing), every service (what kind of repository is this?), the CLI and
the start-up bootstrap, so that all of them read and write repositories the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.models import Repository, RepositoryMember, Storage, Upstream
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?\Z")
REPOSITORY_TYPES = ("hosted", "proxy", "group")
VISIBILITIES = ("public", "private")


def validate_slug(kind: str, name: str) -> str:
    """Check a storage or repository name: 1-64 ASCII letters, digits, `.`, `_`, `-`."""
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"Invalid {kind} name {name!r}: use 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )
    return name


@dataclass(frozen=True)
class RepositoryView:
    """A repository with its storage name, upstreams and ordered members, detached from ORM."""

    id: int
    storage: str
    name: str
    type: str
    visibility: str
    ttl: int | None
    settings: dict[str, object]
    upstreams: tuple[UpstreamConfig, ...] = ()
    members: tuple[str, ...] = field(default=())  # "storage/repo", in order

    @property
    def path(self) -> str:
        """`storage/repo`, the repository's identity in URLs and token scopes."""
        return f"{self.storage}/{self.name}"


async def get_storage(session: AsyncSession, name: str) -> Storage | None:
    """The storage called `name`, or None."""
    return (await session.exec(select(Storage).where(Storage.name == name))).first()


async def ensure_storage(session: AsyncSession, name: str) -> Storage:
    """The storage called `name`, created if missing (race-safe via the unique constraint)."""
    validate_slug("storage", name)
    existing = await get_storage(session, name)
    if existing:
        return existing
    try:
        async with session.begin_nested():
            storage = Storage(name=name)
            session.add(storage)
        return storage
    except IntegrityError:
        found = await get_storage(session, name)
        assert found is not None
        return found


async def find_repository(session: AsyncSession, storage: str, name: str) -> Repository | None:
    """The repository row for `storage/name`, or None."""
    stmt = (
        select(Repository)
        .join(Storage, col(Storage.id) == col(Repository.storage_id))
        .where(Storage.name == storage, Repository.name == name)
    )
    return (await session.exec(stmt)).first()


async def load_repository(session: AsyncSession, storage: str, name: str) -> RepositoryView:
    """The full view of `storage/name`; raises NotFound when it does not exist."""
    repo = await find_repository(session, storage, name)
    if repo is None:
        raise NotFound(f"Repository '{storage}/{name}' does not exist.")
    return await view_of(session, repo, storage)


async def view_of(
    session: AsyncSession, repo: Repository, storage: str | None = None
) -> RepositoryView:
    """Detach `repo` with its upstreams and members into a RepositoryView."""
    assert repo.id is not None
    if storage is None:
        st = await session.get(Storage, repo.storage_id)
        storage = st.name if st else "?"
    upstreams = (
        await session.exec(
            select(Upstream)
            .where(Upstream.repository_id == repo.id)
            .order_by(col(Upstream.position))
        )
    ).all()
    member_rows = (
        await session.exec(
            select(Storage.name, Repository.name)
            .join(Repository, col(Repository.storage_id) == col(Storage.id))
            .join(RepositoryMember, col(RepositoryMember.member_id) == col(Repository.id))
            .where(RepositoryMember.group_id == repo.id)
            .order_by(col(RepositoryMember.position))
        )
    ).all()
    return RepositoryView(
        id=repo.id,
        storage=storage,
        name=repo.name,
        type=repo.type,
        visibility=repo.visibility,
        ttl=repo.ttl,
        settings=dict(repo.settings or {}),
        upstreams=tuple(
            UpstreamConfig(url=u.url, username=u.username, password=u.password, timeout=u.timeout)
            for u in upstreams
        ),
        members=tuple(f"{s}/{r}" for s, r in member_rows),
    )


async def list_repositories(session: AsyncSession) -> list[RepositoryView]:
    """Every repository, ordered by storage and name."""
    rows = (
        await session.exec(
            select(Repository, Storage.name)
            .join(Storage, col(Storage.id) == col(Repository.storage_id))
            .order_by(col(Storage.name), col(Repository.name))
        )
    ).all()
    return [await view_of(session, repo, storage) for repo, storage in rows]


async def apply_repository(
    session: AsyncSession, spec: RepositoryConfig, *, create_only: bool = False
) -> RepositoryView:
    """Create `spec`'s repository, or update it to match `spec` (type, visibility, upstreams,
    members, TTL). With `create_only`, an existing repository is left exactly as it is.

    Refuses to change the type of a repository that holds files, since that would orphan them.
    """
    validate_slug("repository", spec.name)
    storage = await ensure_storage(session, spec.storage)
    repo = await find_repository(session, spec.storage, spec.name)
    if repo is not None and create_only:
        return await view_of(session, repo, spec.storage)
    member_ids = [await _member_id(session, spec, m) for m in spec.members]
    if repo is None:
        repo = Repository(
            storage_id=storage.id,
            name=spec.name,
            type=spec.type,
            visibility=spec.visibility,
            ttl=spec.ttl,
            settings=_settings_of(spec, {}),
        )
        session.add(repo)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"Repository '{spec.storage}/{spec.name}' already exists.") from exc
    else:
        if repo.type != spec.type:
            await _refuse_orphaning(session, repo, spec.type)
        repo.type, repo.visibility, repo.ttl = spec.type, spec.visibility, spec.ttl
        repo.settings = _settings_of(spec, repo.settings or {})
        session.add(repo)
    await session.exec(delete(Upstream).where(col(Upstream.repository_id) == repo.id))  # type: ignore[call-overload]
    await session.exec(delete(RepositoryMember).where(col(RepositoryMember.group_id) == repo.id))  # type: ignore[call-overload]
    for pos, up in enumerate(spec.upstreams):
        session.add(
            Upstream(
                repository_id=repo.id,
                position=pos,
                url=up.url,
                username=up.username,
                password=up.password,
                timeout=up.timeout,
            )
        )
    for pos, member_id in enumerate(member_ids):
        session.add(RepositoryMember(group_id=repo.id, member_id=member_id, position=pos))
    await session.flush()
    return await view_of(session, repo, spec.storage)


def _settings_of(spec: RepositoryConfig, current: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in current.items() if k != "allow_upstream"}
    if spec.allow_upstream:
        settings["allow_upstream"] = sorted({canonicalize_name(n) for n in spec.allow_upstream})
    return settings


async def _member_id(session: AsyncSession, spec: RepositoryConfig, member: str) -> int:
    storage, _, name = member.rpartition("/")
    storage = storage or spec.storage
    repo = await find_repository(session, storage, name)
    if repo is None or repo.id is None:
        raise InvalidInput(
            f"Group '{spec.storage}/{spec.name}' lists member '{storage}/{name}', "
            "which does not exist."
        )
    if repo.type == "group":
        raise InvalidInput(f"Group members must be hosted or proxy repositories, not '{member}'.")
    return repo.id


async def _refuse_orphaning(session: AsyncSession, repo: Repository, new_type: str) -> None:
    from wheelyard.shared.db.models import File  # local: avoids a cycle at import time

    held = (
        await session.exec(select(File.id).where(File.repository_id == repo.id).limit(1))
    ).first()
    if held is not None:
        raise Conflict(
            f"Repository '{repo.name}' holds uploaded files; changing it from {repo.type} to "
            f"{new_type} would orphan them. Delete the files first or create a new repository."
        )


class RepositoryDirectory:
    """Repository views by `storage/name`, kept in memory per process.

    The hot read path looks a repository up on every request, so lookups are served from
    memory: an entry younger than `ttl` is used as is; an older one is still used while one
    background task reloads it (stale-while-revalidate), so concurrent requests never pile up
    on the database when an entry ages. A change (visibility, members...) is therefore seen
    within about `ttl` seconds by every replica, and at once by the process that made it
    (`forget`).
    """

    def __init__(self, sessions: Callable[[], AsyncSession], ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._sessions = sessions
        self._known: dict[tuple[str, str], tuple[float, RepositoryView | None]] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}

    def peek(self, storage: str, name: str) -> tuple[bool, RepositoryView | None]:
        """(known, view) from memory only; an aged entry starts a background reload."""
        key = (storage, name)
        hit = self._known.get(key)
        if hit is None:
            return False, None
        if hit[0] <= time.monotonic() and key not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._reload(key))
            self._refreshing[key] = task
            task.add_done_callback(lambda _t: self._refreshing.pop(key, None))
        return True, hit[1]

    async def get(self, storage: str, name: str) -> RepositoryView | None:
        """The view of `storage/name`, or None when it does not exist."""
        known, cached = self.peek(storage, name)
        if known:
            return cached
        await self._reload((storage, name))
        return self._known[(storage, name)][1]

    async def require(self, storage: str, name: str) -> RepositoryView:
        """Like `get`, raising NotFound when the repository does not exist."""
        view = await self.get(storage, name)
        if view is None:
            raise NotFound(f"Repository '{storage}/{name}' does not exist.")
        return view

    async def _reload(self, key: tuple[str, str]) -> None:
        storage, name = key
        try:
            async with self._sessions() as session:
                repo = await find_repository(session, storage, name)
                view = await view_of(session, repo, storage) if repo is not None else None
        except Exception:
            if key in self._known:  # keep serving the last good view; retry next time
                log.warning("could not reload repository %s/%s", storage, name, exc_info=True)
                return
            raise
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (time.monotonic() + self.ttl, view)

    def forget(self) -> None:
        """Drop everything remembered."""
        self._known.clear()
