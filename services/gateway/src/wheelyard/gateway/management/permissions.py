"""Permissions: who has read, write or admin on a repository, managed by its admins."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.gateway.management.guards import audit, signed_in
from wheelyard.gateway.management.repositories import visible_repository
from wheelyard.gateway.management.schemas import Grant, PermissionOut
from wheelyard.shared.auth.authenticator import forget_user
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts
from wheelyard.shared.web.deps import CacheDep, SessionDep

router = APIRouter(tags=["repositories"])


class PermissionIn(BaseModel):
    """A user's level on a repository."""

    level: Literal["read", "write", "admin"]


async def set_level(
    request: Request,
    session: AsyncSession,
    cache: Cache,
    principal: Principal,
    storage: str,
    name: str,
    username: str,
    level: str | None,
) -> None:
    """Give `username` `level` on the repository (None takes it away), if `principal`
    administers it; audited, committed, effective from the next request."""
    await begin_write(session)
    await visible_repository(request, session, storage, name, "admin")
    await accounts.grant(session, username, storage, name, level)
    audit(
        request,
        session,
        principal.username,
        "permission.set" if level else "permission.remove",
        target=f"{storage}/{name}",
        detail={"user": username, "level": level} if level else {"user": username},
    )
    await session.commit()
    await forget_user(cache, username)


@router.put("/repositories/{storage}/{name}/permissions/{username}", response_model=PermissionOut)
async def set_permission(
    request: Request,
    storage: str,
    name: str,
    username: str,
    payload: PermissionIn,
    session: SessionDep,
    cache: CacheDep,
) -> dict[str, Any]:
    """Give `username` read, write or admin on the repository (the repository's admins)."""
    principal = signed_in(request)
    await set_level(request, session, cache, principal, storage, name, username, payload.level)
    return {"repository": f"{storage}/{name}", "username": username, "level": payload.level}


@router.delete(
    "/repositories/{storage}/{name}/permissions/{username}",
    status_code=204,
)
async def remove_permission(
    request: Request,
    storage: str,
    name: str,
    username: str,
    session: SessionDep,
    cache: CacheDep,
) -> Response:
    """Take away `username`'s permission on the repository."""
    principal = signed_in(request)
    await set_level(request, session, cache, principal, storage, name, username, None)
    return Response(status_code=204)


@router.get("/repositories/{storage}/{name}/permissions", response_model=list[Grant])
async def list_permissions(
    request: Request, storage: str, name: str, session: SessionDep
) -> list[dict[str, str]]:
    """Who has which level on the repository (the repository's admins)."""
    view = await visible_repository(request, session, storage, name, "admin")
    return await accounts.permissions_of(session, view.id)
