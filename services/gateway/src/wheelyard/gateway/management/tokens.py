"""API tokens: everyone signed in with a password creates, lists and revokes their own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.gateway.management.guards import administrator, audit, signed_in
from wheelyard.gateway.management.schemas import CreatedTokenOut, TokenOut
from wheelyard.shared.auth.authenticator import forget_token
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts
from wheelyard.shared.errors import Forbidden, InvalidInput, NotFound
from wheelyard.shared.web.deps import CacheDep, SessionDep

router = APIRouter(tags=["tokens"])
#: Database ids are signed 64-bit integers; a larger number names no token (and must not reach
#: the database driver, which cannot even bind it).
TokenId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class NewTokenIn(BaseModel):
    """An API token to create for yourself."""

    name: str
    repositories: list[str]
    scope: Literal["read", "write"] = "read"
    expires_at: datetime | None = None


async def issue_token(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    repositories: list[str],
    scope: str,
    expires_at: datetime | None,
) -> accounts.CreatedToken:
    """Create an API token of `principal` (signed in with a password, not a token), audited
    and committed. The API and the web interface both create tokens here."""
    if principal.token_id is not None:
        raise Forbidden("API tokens cannot create API tokens; sign in with your password.")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a timezone, e.g. 2027-01-01T00:00:00Z.")
    await begin_write(session)
    owner = await accounts.get_user(session, principal.username or "")
    created = await accounts.create_token(
        session,
        owner,
        name=name,
        repositories=repositories,
        scope=scope,
        expires_at=expires_at,
        reader=principal,
    )
    audit(
        request,
        session,
        principal.username,
        "token.create",
        target=f"token:{created.row.id}",
        detail={
            "name": created.row.name,
            "scope": created.row.scope,
            "repositories": created.row.repositories,
        },
    )
    await session.commit()
    return created


async def revoke(
    request: Request, session: AsyncSession, cache: Cache, principal: Principal, token_id: int
) -> None:
    """Revoke a token of `principal` (administrators: anyone's), audited and committed;
    refused from the next request on. Someone else's token is reported missing."""
    await begin_write(session)
    token = await accounts.get_token(session, token_id)
    if token.user_id != principal.user_id and not (
        principal.is_admin and principal.token_scope is None
    ):
        raise NotFound(f"Token {token_id} does not exist.")
    await accounts.revoke_token(session, token)
    audit(request, session, principal.username, "token.revoke", target=f"token:{token_id}")
    await session.commit()
    await forget_token(cache, token.public_id)


@router.post("/tokens", status_code=201, response_model=CreatedTokenOut)
async def create_token(
    request: Request, payload: NewTokenIn, session: SessionDep
) -> dict[str, Any]:
    """Create an API token for yourself. The `token` value is shown this once; use it as the
    password of user `__token__`, or as `Authorization: Bearer <token>`."""
    principal = signed_in(request)
    created = await issue_token(
        request,
        session,
        principal,
        name=payload.name,
        repositories=payload.repositories,
        scope=payload.scope,
        expires_at=payload.expires_at,
    )
    return accounts.token_view(created.row, principal.username) | {"token": created.value}


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(
    request: Request,
    session: SessionDep,
    all_users: Annotated[bool, Query(alias="all", description="every user's (admins)")] = False,
) -> list[dict[str, Any]]:
    """Your API tokens (administrators: everyone's with `all=true`); never their secrets."""
    principal = signed_in(request)
    if all_users:
        administrator(request)
    tokens = await accounts.list_tokens(session, None if all_users else principal.user_id)
    owners = {u.id: u.username for u in await accounts.list_users(session)}
    return [accounts.token_view(t, owners.get(t.user_id)) for t in tokens]


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(
    request: Request, token_id: TokenId, session: SessionDep, cache: CacheDep
) -> Response:
    """Revoke a token (its owner, or an administrator); refused from the next request on."""
    await revoke(request, session, cache, signed_in(request), token_id)
    return Response(status_code=204)
