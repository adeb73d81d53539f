"""Repositories: created and deleted by administrators, changed by their admins, listed for
whoever may read them.

Each change is one function (`create`, `update`, `delete`; `repository_spec` checks what a
caller describes) that the API routes below and the web interface both call, so both apply the
same rules (a repository one may not read answers as a missing one; a group's members one may
not read are neither shown nor lost) and audit the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.gateway.management.guards import administrator, audit, signed_in
from wheelyard.gateway.management.schemas import RepositoryOut
from wheelyard.shared.auth.access import allowed, can_read, missing, require_admin, require_read
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.config import (
    RepositoryConfig,
    UpstreamConfig,
    check_pem_bundle,
    format_duration,
)
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain.hosted import list_scope, project_scope
from wheelyard.shared.domain.policy import SETTING_KEYS, validate_settings
from wheelyard.shared.domain.repositories import (
    RepositoryView,
    apply_repository,
    cached_names,
    find_repository,
    holds_files,
    list_repositories,
    load_repository,
    proxy_state_key,
    split_path,
    unknown_member,
    view_of,
)
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound
from wheelyard.shared.netpolicy import check_upstream_url
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["repositories"])


class UpstreamIn(UpstreamConfig):
    """An upstream index of a proxy repository (an http(s) URL; 422 otherwise). `ca_bundle`:
    PEM certificates trusted for it besides the system trust store (a TLS-inspecting proxy, a
    private CA)."""

    timeout: float = Field(default=30.0, gt=0, le=600)
    ca_bundle: str | None = Field(default=None, max_length=1024 * 1024)

    @field_validator("ca_bundle")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_pem_bundle(value)


class PolicyFields(BaseModel):
    """The supply-chain rules (docs/supply-chain.md); a value that does not parse is refused
    with 422 naming the setting."""

    min_release_age: str | int | None = Field(
        default=None, description='a duration: "7d", "36h", "90m" or seconds'
    )
    release_age_exempt: list[str] | None = Field(
        default=None, description='requirement strings the age rule skips: "urllib3==2.2.3"'
    )
    blocked: list[str] | None = Field(
        default=None, description='requirement strings never served: "evil-pkg", "*-nightly"'
    )
    allowed: list[str] | None = Field(
        default=None, description="when non-empty, only matching files are served"
    )
    withheld_files: Literal["yanked", "hidden"] | None = Field(
        default=None, description="how a file the age rule withholds is listed"
    )

    @model_validator(mode="after")
    def _rules_parse(self) -> PolicyFields:
        validate_settings(self.model_dump(include=set(SETTING_KEYS)))
        return self


class NewRepository(PolicyFields):
    """A repository to create."""

    storage: str = "default"
    name: str
    type: Literal["hosted", "proxy", "group"]
    visibility: Literal["public", "private"] = "public"
    upstreams: list[UpstreamIn] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    ttl: int | None = Field(default=None, ge=0)
    allow_upstream: list[str] = Field(default_factory=list)
    cache_max_bytes: int | str | None = Field(
        default=None, description="proxy only: cache at most this much (bytes, or '10GB')"
    )
    cache_max_idle: int | str | None = Field(
        default=None,
        description="proxy only: drop cached files not downloaded for this long ('30d')",
    )


class RepositoryChange(PolicyFields):
    """Changes to a repository; omitted fields stay as they are (`null` or `[]` clears a
    supply-chain rule)."""

    type: Literal["hosted", "proxy", "group"] | None = None
    visibility: Literal["public", "private"] | None = None
    upstreams: list[UpstreamIn] | None = None
    members: list[str] | None = None
    ttl: int | None = Field(default=None, ge=0)
    allow_upstream: list[str] | None = None
    cache_max_bytes: int | str | None = Field(
        default=None, description="proxy only: bytes, or '10GB'; null removes the limit"
    )
    cache_max_idle: int | str | None = Field(
        default=None, description="proxy only: e.g. '30d'; null removes the limit"
    )


def _repository_json(
    view: RepositoryView, principal: Principal, members: dict[str, RepositoryView]
) -> dict[str, Any]:
    """`view` as `principal` may see it: only the members they may read (a private member's
    name is not told to who may not read it), and the upstreams' usernames only to the
    repository's admins; never a password, nor credentials written into an upstream URL."""
    admin = allowed(principal, view, "admin")
    return {
        "storage": view.storage,
        "name": view.name,
        "type": view.type,
        "visibility": view.visibility,
        "ttl": view.ttl,
        "members": [m for m in view.members if _readable_member(principal, view, members, m)],
        "upstreams": [
            {
                "url": without_userinfo(u.url),
                "username": u.username if admin else None,
                "timeout": u.timeout,
                "has_password": u.password is not None or "@" in urlsplit(u.url).netloc,
                "ca_bundle": u.ca_bundle,
            }
            for u in view.upstreams
        ],
        "allow_upstream": list(view.settings.get("allow_upstream", [])),
        **policy_json(view),
        "cache_max_bytes": view.settings.get("cache_max_bytes"),
        "cache_max_idle": _duration(view.settings.get("cache_max_idle")),
        "url": f"/repositories/{view.storage}/{view.name}/",
    }


def policy_json(view: RepositoryView) -> dict[str, Any]:
    """The repository's supply-chain settings as stored (every key, defaults included)."""
    settings = view.settings
    return {
        "min_release_age": settings.get("min_release_age"),
        "release_age_exempt": list(settings.get("release_age_exempt", [])),
        "blocked": list(settings.get("blocked", [])),
        "allowed": list(settings.get("allowed", [])),
        "withheld_files": settings.get("withheld_files", "yanked"),
    }


def _duration(seconds: int | None) -> str | None:
    return None if seconds is None else format_duration(int(seconds))


def _readable_member(
    principal: Principal, group: RepositoryView, members: dict[str, RepositoryView], path: str
) -> bool:
    member = members.get(path)
    return member is not None and can_read(principal, member, group=group)


def without_userinfo(url: str) -> str:
    """`url` without a `user:password@` part (upstream URLs may carry one): what is shown."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


async def _members_of(
    session: AsyncSession, views: list[RepositoryView]
) -> dict[str, RepositoryView]:
    """The member repositories of the groups among `views`, by path."""
    paths = {m for v in views for m in v.members}
    if not paths:
        return {}
    return {v.path: v for v in await list_repositories(session) if v.path in paths}


async def _apply(request: Request, session: AsyncSession, spec: RepositoryConfig) -> RepositoryView:
    settings = request.app.state.runtime.backends.settings
    for upstream in spec.upstreams:
        await check_upstream_url(upstream.url, allow_private=settings.allow_private_upstreams)
    view = await apply_repository(session, spec)
    request.app.state.runtime.directory.forget()
    return view


def repository_spec(data: dict[str, Any]) -> RepositoryConfig:
    """The repository `data` describes; InvalidInput naming each field at fault otherwise."""
    try:
        return RepositoryConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in e["loc"]) + ": " if e["loc"] else "") + e["msg"]
            for e in exc.errors()
        ]
        message = "; ".join(p.replace("Value error, ", "") for p in problems)
        raise InvalidInput(message or "Invalid repository.") from exc


async def create(
    request: Request, session: AsyncSession, admin: Principal, spec: RepositoryConfig
) -> RepositoryView:
    """Create the repository `spec` describes (by `admin`), audited and committed."""
    await begin_write(session)
    if await find_repository(session, spec.storage, spec.name) is not None:
        raise Conflict(f"Repository '{spec.storage}/{spec.name}' already exists.")
    view = await _apply(request, session, spec)
    audit(
        request,
        session,
        admin.username,
        "repository.create",
        target=view.path,
        detail={"type": view.type, "visibility": view.visibility},
    )
    await session.commit()
    request.app.state.runtime.directory.forget()  # again: a lookup may have raced the commit
    return view


@router.post("/repositories", status_code=201, response_model=RepositoryOut)
async def create_repository(
    request: Request, payload: NewRepository, session: SessionDep
) -> dict[str, Any]:
    """Create a hosted, proxy or group repository (administrators only)."""
    admin = administrator(request)
    view = await create(
        request, session, admin, repository_spec(payload.model_dump(exclude_none=True))
    )
    return await _shown(session, admin, await load_repository(session, view.storage, view.name))


async def _shown(
    session: AsyncSession, principal: Principal, view: RepositoryView
) -> dict[str, Any]:
    return _repository_json(view, principal, await _members_of(session, [view]))


@router.get("/repositories", response_model=list[RepositoryOut])
async def list_all_repositories(request: Request, session: SessionDep) -> list[dict[str, Any]]:
    """The repositories you may read (every public one, with or without credentials)."""
    principal: Principal = request.state.principal
    views = await list_repositories(session)
    by_path = {v.path: v for v in views}
    return [_repository_json(v, principal, by_path) for v in views if can_read(principal, v)]


async def visible_repository(
    request: Request, session: AsyncSession, storage: str, name: str, level: str
) -> RepositoryView:
    """`storage/name` if the caller may act on it at `level` (read or admin); a repository
    they may not read answers exactly as a missing one."""
    return await _visible(session, request.state.principal, storage, name, level)


async def _visible(
    session: AsyncSession, principal: Principal, storage: str, name: str, level: str
) -> RepositoryView:
    found = await find_repository(session, storage, name)
    if found is None:
        raise missing(principal, f"{storage}/{name}")
    view = await view_of(session, found, storage)
    require_read(principal, view)
    if level == "admin":
        require_admin(principal, view)
    return view


@router.get("/repositories/{storage}/{name}", response_model=RepositoryOut)
async def get_repository(
    request: Request, storage: str, name: str, session: SessionDep
) -> dict[str, Any]:
    """One repository's settings (members, upstreams without passwords, TTL, visibility)."""
    view = await visible_repository(request, session, storage, name, "read")
    return await _shown(session, request.state.principal, view)


async def update(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    storage: str,
    name: str,
    changes: dict[str, Any],
) -> RepositoryView:
    """Change `storage/name` as `changes` says (fields of `RepositoryChange`; those absent
    stay as they are), if `principal` administers it; audited and committed. Switching a
    repository that holds uploaded files to another type is refused, saying so. `members`
    lists the members `principal` may read; those they may not read (nor see) stay, after
    them."""
    await begin_write(session)
    view = await _visible(session, principal, storage, name, "admin")
    members = await _members_of(session, [view])
    current: dict[str, Any] = {
        "storage": view.storage,
        "name": view.name,
        "type": view.type,
        "visibility": view.visibility,
        "ttl": view.ttl,
        "members": list(view.members),
        "upstreams": [u.model_dump() for u in view.upstreams],
        "allow_upstream": list(view.settings.get("allow_upstream", [])),
        **policy_json(view),
        "cache_max_bytes": view.settings.get("cache_max_bytes"),
        "cache_max_idle": view.settings.get("cache_max_idle"),
    }
    asked = {k: v for k, v in changes.items() if not (k in SETTING_KEYS and v is None)}
    for key in SETTING_KEYS:
        if key in changes and changes[key] is None:
            current.pop(key)  # cleared
    if asked.get("members") is not None:
        asked["members"] = await _new_members(session, principal, view, members, asked["members"])
    if asked.get("type") and asked["type"] != "proxy":
        current["upstreams"] = asked.get("upstreams", [])
        current["cache_max_bytes"] = asked.get("cache_max_bytes")
        current["cache_max_idle"] = asked.get("cache_max_idle")
    if asked.get("type") and asked["type"] != "group":
        current["members"] = asked.get("members", [])
        current["allow_upstream"] = asked.get("allow_upstream", [])
    updated = await _apply(request, session, repository_spec(current | asked))
    audit(
        request,
        session,
        principal.username,
        "repository.update",
        target=updated.path,
        detail={"changed": sorted(changes)},
    )
    await session.commit()
    request.app.state.runtime.directory.forget()  # again: a lookup may have raced the commit
    return updated


@router.patch("/repositories/{storage}/{name}", response_model=RepositoryOut)
async def change_repository(
    request: Request, storage: str, name: str, payload: RepositoryChange, session: SessionDep
) -> dict[str, Any]:
    """Change type, visibility, upstreams, members or TTL (the repository's admins). Switching
    a repository that holds uploaded files to another type is refused, saying so. `members`
    lists the members you may read; members you may not read (nor see) stay, after them."""
    principal = signed_in(request)
    changes = payload.model_dump(exclude_unset=True)
    await update(request, session, principal, storage, name, changes)
    return await _shown(session, principal, await load_repository(session, storage, name))


async def _new_members(
    session: AsyncSession,
    principal: Principal,
    group: RepositoryView,
    current: dict[str, RepositoryView],
    asked: list[str],
) -> list[str]:
    """The member list after a change that asks for `asked`: a repository the caller may not
    read is refused exactly like a missing one, and the current members hidden from the caller
    are kept, in their order, after the ones asked for."""
    out = []
    for member in asked:
        member_storage, member_name = split_path(member, group.storage)
        path = f"{member_storage}/{member_name}"
        known = current.get(path)
        if known is None:
            row = await find_repository(session, member_storage, member_name)
            known = await view_of(session, row, member_storage) if row is not None else None
        if known is None or not can_read(principal, known, group=group):
            raise unknown_member(group.path, path)
        out.append(path)
    hidden = [
        m
        for m in group.members
        if m not in out and not _readable_member(principal, group, current, m)
    ]
    return out + hidden


async def delete(
    request: Request,
    session: AsyncSession,
    admin: Principal,
    storage: str,
    name: str,
    *,
    force: bool,
) -> None:
    """Delete a repository (by `admin`); one holding uploaded files only with `force`.
    Audited, committed, and everything cached about it dropped (see `delete_repository`)."""
    await begin_write(session)
    repo = await find_repository(session, storage, name)
    if repo is None or repo.id is None:
        raise NotFound(f"Repository '{storage}/{name}' does not exist.")
    if await holds_files(session, repo.id) and not force:
        raise Conflict(
            f"Repository '{storage}/{name}' holds uploaded files; deleting it would orphan them. "
            "Delete it with force (?force=true in the API, the box on its settings page) to do "
            "it anyway; the files' bytes stay in the blob store until collected."
        )
    names = await cached_names(session, repo.id)
    await session.delete(repo)
    audit(
        request,
        session,
        admin.username,
        "repository.delete",
        target=f"{storage}/{name}",
        detail={"force": force},
    )
    await session.commit()
    runtime = request.app.state.runtime
    runtime.directory.forget()
    for project in names.hosted_projects:
        await runtime.pages.forget(project_scope(repo.id, project))
    await runtime.pages.forget(list_scope(repo.id))
    for project in names.proxy_projects:
        await runtime.backends.cache.delete(proxy_state_key(repo.id, project))


@router.delete("/repositories/{storage}/{name}", status_code=204)
async def delete_repository(
    request: Request,
    storage: str,
    name: str,
    session: SessionDep,
    force: Annotated[bool, Query(description="also delete a repository that holds files")] = False,
) -> Response:
    """Delete a repository (administrators only). One that holds uploaded files is refused
    unless `force=true`; its files' bytes stay in the blob store until collected, and are
    never served again (no file record holds them any more). Everything cached about it goes
    with it: proxied pages and file records (rows), serial hints and page states (cache);
    rendered pages are keyed by its id, which is never given to another repository."""
    await delete(request, session, administrator(request), storage, name, force=force)
    return Response(status_code=204)
