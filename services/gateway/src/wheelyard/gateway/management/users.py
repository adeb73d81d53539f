"""Users: created, listed, changed and deleted by administrators; a password changed by its
owner too."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.gateway.management.guards import administrator, audit, signed_in
from wheelyard.shared.auth.authenticator import forget_user
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import User
from wheelyard.shared.domain import accounts
from wheelyard.shared.errors import Conflict
from wheelyard.shared.web.deps import CacheDep, SessionDep

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    """A user to create."""

    username: str
    password: str
    is_admin: bool = False


class UserChange(BaseModel):
    """Changes to a user; omitted fields stay as they are."""

    password: str | None = None
    is_admin: bool | None = None
    is_active: bool | None = None


async def add_user(
    request: Request,
    session: AsyncSession,
    admin: Principal,
    *,
    username: str,
    password: str,
    is_admin: bool,
) -> User:
    """Create a user (by `admin`), audited and committed."""
    await begin_write(session)
    user = await accounts.create_user(session, username, password, is_admin=is_admin)
    audit(
        request,
        session,
        admin.username,
        "user.create",
        target=user.username,
        detail={"is_admin": user.is_admin},
    )
    await session.commit()
    return user


async def change(
    request: Request,
    session: AsyncSession,
    cache: Cache,
    actor: Principal,
    username: str,
    *,
    password: str | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's password, admin flag or active state (None: unchanged), audited and
    committed; effective from the next request (their sessions end with a new password)."""
    await begin_write(session)
    user = await accounts.update_user(
        session, username, password=password, is_admin=is_admin, is_active=is_active
    )
    given = {"password": password, "is_admin": is_admin, "is_active": is_active}
    changed = sorted(k for k, v in given.items() if v is not None)
    audit(
        request,
        session,
        actor.username,
        "user.update",
        target=username,
        detail={"changed": changed},
    )
    await session.commit()
    await forget_user(cache, username)
    return user


async def remove_user(
    request: Request, session: AsyncSession, cache: Cache, admin: Principal, username: str
) -> None:
    """Delete a user with their permissions and tokens (never oneself), audited, committed."""
    if admin.username == username:
        raise Conflict("You cannot delete your own account.")
    await begin_write(session)
    await accounts.delete_user(session, username)
    audit(request, session, admin.username, "user.delete", target=username)
    await session.commit()
    await forget_user(cache, username)


@router.post("/users", status_code=201)
async def create_user(request: Request, payload: NewUser, session: SessionDep) -> dict[str, Any]:
    """Create a user (administrators only)."""
    admin = administrator(request)
    user = await add_user(
        request,
        session,
        admin,
        username=payload.username,
        password=payload.password,
        is_admin=payload.is_admin,
    )
    return accounts.user_view(user)


@router.get("/users")
async def list_users(request: Request, session: SessionDep) -> list[dict[str, Any]]:
    """Every user (administrators only)."""
    administrator(request)
    return [accounts.user_view(u) for u in await accounts.list_users(session)]


@router.patch("/users/{username}")
async def change_user(
    request: Request, username: str, payload: UserChange, session: SessionDep, cache: CacheDep
) -> dict[str, Any]:
    """Change a password (yourself or, for administrators, anyone), admin flag or active state
    (administrators only). Takes effect from the next request on."""
    principal = signed_in(request)
    own_password_only = (
        principal.username == username
        and payload.is_admin is None
        and payload.is_active is None
        and principal.token_scope is None
    )
    if not own_password_only:
        administrator(request)
    user = await change(
        request,
        session,
        cache,
        principal,
        username,
        password=payload.password,
        is_admin=payload.is_admin,
        is_active=payload.is_active,
    )
    return accounts.user_view(user)


@router.delete("/users/{username}", status_code=204)
async def delete_user(
    request: Request, username: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Delete a user with their permissions and tokens (administrators only)."""
    await remove_user(request, session, cache, administrator(request), username)
    return Response(status_code=204)
