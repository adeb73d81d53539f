"""Users: created, listed, changed and deleted by administrators; a password changed by its
owner too.

Each change is one function (`add_user`, `change`, `remove_user`) that the API routes below and
the web interface both call, so both apply the same rules and audit the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.gateway.management.guards import (
    administrator,
    audit,
    client_address,
    require_administrator,
    signed_in,
)
from wheelyard.gateway.management.schemas import UserOut
from wheelyard.shared.auth.authenticator import Authenticator, forget_user
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import User
from wheelyard.shared.domain import accounts
from wheelyard.shared.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from wheelyard.shared.web.deps import CacheDep, SessionDep

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    """A user to create."""

    username: str
    password: str
    is_admin: bool = False


class UserChange(BaseModel):
    """Changes to a user; omitted fields stay as they are. Changing your own password needs
    `current_password` too (an administrator resetting someone else's does not)."""

    password: str | None = None
    current_password: str | None = None
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
    current_password: str | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's password, admin flag or active state (None: unchanged), audited and
    committed; effective from the next request (a new password ends their sessions: access
    tokens issued before it are refused; API tokens stay valid, see docs/security.md).

    `actor` may change their own password, proving the current one (`current_password`);
    anything else, anyone's, only an administrator (signed in without an API token)."""
    own = actor.username == username
    own_password_only = own and is_admin is None and is_active is None and actor.token_scope is None
    if not own_password_only:
        require_administrator(actor)
    if own and password is not None:
        await _prove_current_password(request, username, current_password)
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


async def _prove_current_password(request: Request, username: str, current: str | None) -> None:
    """Raise unless `current` is `username`'s password: a session left open, or a stolen
    access token, must not be enough to take the account over. Checked like a sign-in:
    throttled and, when wrong, audited."""
    if current is None:
        raise InvalidInput("Give your current password as 'current_password' to change it.")
    authenticator: Authenticator = request.app.state.authenticator
    try:
        await authenticator.by_password(
            username, current, client_address(request), method="password-change"
        )
    except Unauthenticated as exc:
        raise Forbidden("'current_password' is not your current password.") from exc


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


@router.post("/users", status_code=201, response_model=UserOut)
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


@router.get("/users", response_model=list[UserOut])
async def list_users(request: Request, session: SessionDep) -> list[dict[str, Any]]:
    """Every user (administrators only)."""
    administrator(request)
    return [accounts.user_view(u) for u in await accounts.list_users(session)]


@router.patch("/users/{username}", response_model=UserOut)
async def change_user(
    request: Request, username: str, payload: UserChange, session: SessionDep, cache: CacheDep
) -> dict[str, Any]:
    """Change a password (yourself, giving `current_password`, or, for administrators,
    anyone's), admin flag or active state (administrators only). Takes effect from the next
    request on: a changed password ends the user's sessions (access tokens issued before it
    are refused; API tokens stay valid, see docs/security.md)."""
    user = await change(
        request,
        session,
        cache,
        signed_in(request),
        username,
        password=payload.password,
        current_password=payload.current_password,
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
