"""Storages and repositories: lookup, creation and reconciliation with declared configuration.

Used by the gateway (routing), every service (what kind of repository is this?), the CLI and
the start-up bootstrap, so that all of them read and write repositories the same way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.models import (
    File,
    Project,
    ProxyPage,
    Repository,
    RepositoryMember,
    Storage,
    Upstream,
)
from wheelyard.shared.domain.policy import (
    SETTING_KEYS,
    RepositoryPolicy,
    compile_policy,
    validate_settings,
)
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)
#: What a storage or repository name may be (1-64 characters).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?\Z")
_NAME_RE = NAME_PATTERN


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
    settings: dict[str, Any]
    upstreams: tuple[UpstreamConfig, ...] = ()
    members: tuple[str, ...] = field(default=())  # "storage/repo", in order
    #: The compiled supply-chain rules (`domain.policy`), None when it has none: computed once
    #: per view, so the hot path pays nothing for a repository without rules.
    policy: RepositoryPolicy | None = None

    @property
    def path(self) -> str:
        """`storage/repo`, the repository's identity in URLs and token scopes."""
        return f"{self.storage}/{self.name}"

    @property
    def member_refs(self) -> tuple[tuple[str, str], ...]:
        """The members as `(storage, name)` pairs, in order."""
        return tuple(split_path(member) for member in self.members)


def split_path(path: str, default_storage: str | None = None) -> tuple[str, str]:
    """`storage/name` as `(storage, name)`; a bare `name` takes `default_storage`
    (InvalidInput when there is none)."""
    storage, _, name = path.rpartition("/")
    if not storage:
        if default_storage is None:
            raise InvalidInput(f"Name a repository as 'storage/name', not {path!r}.")
        storage = default_storage
    return storage, name


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
            UpstreamConfig(
                url=u.url,
                username=u.username,
                password=u.password,
                timeout=u.timeout,
                ca_bundle=u.ca_bundle,
            )
            for u in upstreams
        ),
        members=tuple(f"{s}/{r}" for s, r in member_rows),
        policy=compile_policy(repo.settings or {}, f"{storage}/{repo.name}"),
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
    policy_settings(spec)  # refused before anything is written
    storage = await ensure_storage(session, spec.storage)
    repo = await find_repository(session, spec.storage, spec.name)
    if repo is not None and create_only:
        return await view_of(session, repo, spec.storage)
    member_ids = [await _member_id(session, spec, m) for m in spec.members]
    if repo is None:
        assert storage.id is not None  # ensure_storage returns a flushed row
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
    assert repo.id is not None  # flushed above, or loaded
    await session.exec(delete(Upstream).where(col(Upstream.repository_id) == repo.id))
    await session.exec(delete(RepositoryMember).where(col(RepositoryMember.group_id) == repo.id))
    for pos, up in enumerate(spec.upstreams):
        session.add(
            Upstream(
                repository_id=repo.id,
                position=pos,
                url=up.url,
                username=up.username,
                password=up.password,
                timeout=up.timeout,
                ca_bundle=up.ca_bundle,
            )
        )
    for pos, member_id in enumerate(member_ids):
        session.add(RepositoryMember(group_id=repo.id, member_id=member_id, position=pos))
    await session.flush()
    return await view_of(session, repo, spec.storage)


#: What `settings` holds from a RepositoryConfig (all of it replaced on every apply).
_SETTINGS = ("allow_upstream", "cache_max_bytes", "cache_max_idle")


def _settings_of(spec: RepositoryConfig, current: dict[str, Any]) -> dict[str, Any]:
    owned = {*_SETTINGS, *SETTING_KEYS}
    settings = {k: v for k, v in current.items() if k not in owned}
    if spec.allow_upstream:
        settings["allow_upstream"] = sorted({canonicalize_name(n) for n in spec.allow_upstream})
    settings.update(policy_settings(spec))
    if spec.cache_max_bytes is not None:
        settings["cache_max_bytes"] = spec.cache_max_bytes
    if spec.cache_max_idle is not None:
        settings["cache_max_idle"] = spec.cache_max_idle
    return settings


def policy_settings(spec: RepositoryConfig) -> dict[str, Any]:
    """The supply-chain settings `spec` declares, checked and in stored form; InvalidInput
    naming the repository and the setting otherwise."""
    try:
        return validate_settings(spec.model_dump(include=set(SETTING_KEYS)))
    except ValueError as exc:
        raise InvalidInput(f"Repository '{spec.storage}/{spec.name}': {exc}") from None


async def _member_id(session: AsyncSession, spec: RepositoryConfig, member: str) -> int:
    storage, name = split_path(member, spec.storage)
    repo = await find_repository(session, storage, name)
    if repo is None or repo.id is None:
        raise unknown_member(f"{spec.storage}/{spec.name}", f"{storage}/{name}")
    if repo.type == "group":
        raise InvalidInput(f"Group members must be hosted or proxy repositories, not '{member}'.")
    return repo.id


def unknown_member(group: str, member: str) -> InvalidInput:
    """The refusal of a group member `member` that does not exist (or that the caller may not
    read: the same words, so that they cannot be told apart)."""
    return InvalidInput(f"Group '{group}' lists member '{member}', which does not exist.")


async def holds_files(session: AsyncSession, repository_id: int) -> bool:
    """True when the repository holds any file record (live or deleted)."""
    found = (
        await session.exec(select(File.id).where(File.repository_id == repository_id).limit(1))
    ).first()
    return found is not None


async def _refuse_orphaning(session: AsyncSession, repo: Repository, new_type: str) -> None:
    assert repo.id is not None
    if await holds_files(session, repo.id):
        raise Conflict(
            f"Repository '{repo.name}' holds uploaded files; changing it from {repo.type} to "
            f"{new_type} would orphan them. Delete the files first or create a new repository."
        )


def proxy_state_key(repository_id: int, project: str) -> str:
    """The cache key of a proxy page's state (kept by the proxy-cache service; named here so
    that deleting a repository can delete it)."""
    return f"proxy:state:{repository_id}:{project}"


@dataclass(frozen=True)
class CachedNames:
    """What a repository has entries in the cache for: its hosted projects (serial hints)
    and its proxied projects (page states)."""

    hosted_projects: list[str]
    proxy_projects: list[str]


async def cached_names(session: AsyncSession, repository_id: int) -> CachedNames:
    """The names under which `repository_id` may have cache entries (read before deleting it;
    entries that cannot be named are keyed by its id, which is never reused)."""
    hosted = await session.exec(select(Project.name).where(Project.repository_id == repository_id))
    proxied = await session.exec(
        select(ProxyPage.project).where(ProxyPage.repository_id == repository_id)
    )
    return CachedNames(list(hosted.all()), list(proxied.all()))
