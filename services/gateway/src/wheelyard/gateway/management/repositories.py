"""Repositories: created and deleted by administrators, changed by their admins, listed for
whoever may read them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.gateway.management.guards import administrator, audit, signed_in
from wheelyard.shared.auth.access import allowed, require_admin, require_read
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain.repositories import (
    RepositoryView,
    apply_repository,
    find_repository,
    holds_files,
    list_repositories,
    load_repository,
)
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound
from wheelyard.shared.netpolicy import check_upstream_url
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["repositories"])


class UpstreamIn(BaseModel):
    """An upstream index of a proxy repository."""

    url: str
    username: str | None = None
    password: str | None = None
    timeout: float = Field(default=30.0, gt=0, le=600)


class NewRepository(BaseModel):
    """A repository to create."""

    storage: str = "default"
    name: str
    type: Literal["hosted", "proxy", "group"]
    visibility: Literal["public", "private"] = "public"
    upstreams: list[UpstreamIn] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    ttl: int | None = Field(default=None, ge=0)
    allow_upstream: list[str] = Field(default_factory=list)


class RepositoryChange(BaseModel):
    """Changes to a repository; omitted fields stay as they are."""

    type: Literal["hosted", "proxy", "group"] | None = None
    visibility: Literal["public", "private"] | None = None
    upstreams: list[UpstreamIn] | None = None
    members: list[str] | None = None
    ttl: int | None = Field(default=None, ge=0)
    allow_upstream: list[str] | None = None


def _repository_json(view: RepositoryView) -> dict[str, Any]:
    return {
        "storage": view.storage,
        "name": view.name,
        "type": view.type,
        "visibility": view.visibility,
        "ttl": view.ttl,
        "members": list(view.members),
        "upstreams": [
            {
                "url": u.url,
                "username": u.username,
                "timeout": u.timeout,
                "has_password": u.password is not None,
            }
            for u in view.upstreams
        ],
        "allow_upstream": list(view.settings.get("allow_upstream", [])),  # type: ignore[call-overload]
        "url": f"/repositories/{view.storage}/{view.name}/",
    }


async def _apply(request: Request, session: AsyncSession, spec: RepositoryConfig) -> RepositoryView:
    settings = request.app.state.runtime.backends.settings
    for upstream in spec.upstreams:
        await check_upstream_url(upstream.url, allow_private=settings.allow_private_upstreams)
    view = await apply_repository(session, spec)
    request.app.state.runtime.directory.forget()
    return view


def _spec(data: dict[str, Any]) -> RepositoryConfig:
    return repository_spec(data)


def repository_spec(data: dict[str, Any]) -> RepositoryConfig:
    """The repository `data` describes; InvalidInput naming what is wrong otherwise."""
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


async def update(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    spec: RepositoryConfig,
    changed: list[str],
) -> RepositoryView:
    """Make an existing repository what `spec` says (`changed`: the fields asked to change,
    for the audit), audited and committed. The caller checked the right to do so."""
    updated = await _apply(request, session, spec)
    audit(
        request,
        session,
        principal.username,
        "repository.update",
        target=updated.path,
        detail={"changed": sorted(changed)},
    )
    await session.commit()
    request.app.state.runtime.directory.forget()  # again: a lookup may have raced the commit
    return updated


async def delete(
    request: Request,
    session: AsyncSession,
    admin: Principal,
    storage: str,
    name: str,
    *,
    force: bool,
) -> None:
    """Delete a repository (by `admin`); one holding files only with `force`. Audited,
    committed."""
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
    request.app.state.runtime.directory.forget()


@router.post("/repositories", status_code=201)
async def create_repository(
    request: Request, payload: NewRepository, session: SessionDep
) -> dict[str, Any]:
    """Create a hosted, proxy or group repository (administrators only)."""
    admin = administrator(request)
    view = await create(request, session, admin, _spec(payload.model_dump()))
    return _repository_json(await load_repository(session, view.storage, view.name))


@router.get("/repositories")
async def list_all_repositories(request: Request, session: SessionDep) -> list[dict[str, Any]]:
    """The repositories you may read."""
    principal: Principal = request.state.principal
    return [
        _repository_json(v)
        for v in await list_repositories(session)
        if allowed(principal, v, "read")
    ]


async def visible_repository(
    request: Request, session: SessionDep, storage: str, name: str, level: str
) -> RepositoryView:
    view = await load_repository(session, storage, name)
    principal: Principal = request.state.principal
    require_read(principal, view)
    if level == "admin":
        require_admin(principal, view)
    return view


@router.get("/repositories/{storage}/{name}")
async def get_repository(
    request: Request, storage: str, name: str, session: SessionDep
) -> dict[str, Any]:
    """One repository's settings (members, upstreams without passwords, TTL, visibility)."""
    return _repository_json(await visible_repository(request, session, storage, name, "read"))


@router.patch("/repositories/{storage}/{name}")
async def change_repository(
    request: Request, storage: str, name: str, payload: RepositoryChange, session: SessionDep
) -> dict[str, Any]:
    """Change type, visibility, upstreams, members or TTL (the repository's admins). Switching
    a repository that holds uploaded files to another type is refused, saying so."""
    principal = signed_in(request)
    await begin_write(session)
    view = await visible_repository(request, session, storage, name, "admin")
    current: dict[str, Any] = {
        "storage": view.storage,
        "name": view.name,
        "type": view.type,
        "visibility": view.visibility,
        "ttl": view.ttl,
        "members": list(view.members),
        "upstreams": [u.model_dump() for u in view.upstreams],
        "allow_upstream": list(view.settings.get("allow_upstream", [])),  # type: ignore[call-overload]
    }
    changes = payload.model_dump(exclude_unset=True)
    if "upstreams" in changes:
        changes["upstreams"] = [UpstreamConfig(**u).model_dump() for u in changes["upstreams"]]
    if changes.get("type") and changes["type"] != "proxy":
        current["upstreams"] = changes.get("upstreams", [])
    if changes.get("type") and changes["type"] != "group":
        current["members"] = changes.get("members", [])
        current["allow_upstream"] = changes.get("allow_upstream", [])
    await update(
        request,
        session,
        principal,
        _spec(current | changes),
        list(payload.model_dump(exclude_unset=True)),
    )
    return _repository_json(await load_repository(session, storage, name))


@router.delete("/repositories/{storage}/{name}", status_code=204)
async def delete_repository(
    request: Request,
    storage: str,
    name: str,
    session: SessionDep,
    force: Annotated[bool, Query(description="also delete a repository that holds files")] = False,
) -> Response:
    """Delete a repository (administrators only). One that holds uploaded files is refused
    unless `force=true`; its files' bytes stay in the blob store until collected."""
    await delete(request, session, administrator(request), storage, name, force=force)
    return Response(status_code=204)
