"""The management API (OpenAPI at /docs): sign-in, users, repositories, permissions, tokens,
audit. Everything here runs in the gateway, which authenticated the caller already.

Rules: only administrators manage users and create or delete repositories; a repository's
admins (and global admins) change it and its permissions; everyone signed in manages their own
tokens, but not with a token (a read-only token must not mint itself a write one); listings
never include a password hash, a token secret or its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from wheelyard.shared import accounts
from wheelyard.shared.auth.access import allowed, require_admin, require_read
from wheelyard.shared.auth.authenticator import Authenticator, forget_token, forget_user
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.config import RepositoryConfig, UpstreamConfig
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import File, Permission, User
from wheelyard.shared.db.registry import (
    RepositoryView,
    apply_repository,
    find_repository,
    list_repositories,
    load_repository,
)
from wheelyard.shared.deps import CacheDep, SessionDep
from wheelyard.shared.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from wheelyard.shared.netpolicy import check_upstream_url

router = APIRouter(prefix="/api/v1")


def _principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or not principal.authenticated:
        raise Unauthenticated("Sign in to use the management API.")
    return principal


def _admin(request: Request) -> Principal:
    principal = _principal(request)
    if not principal.is_admin or principal.token_scope is not None:
        raise Forbidden(
            "Only administrators (signed in with a password or access token) may do this."
        )
    return principal


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _audit(
    request: Request,
    session: SessionDep,
    actor: str | None,
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record who did what, from the request's client address, in the current transaction."""
    accounts.record(
        session,
        actor=actor,
        action=action,
        target=target,
        source_ip=_client(request),
        detail=detail,
    )


# -- sign-in -----------------------------------------------------------------------------------


class TokenResponse(BaseModel):
    """An access token for the `Authorization: Bearer` header."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (a token type, not a secret)
    expires_in: int


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"])
async def sign_in(request: Request, session: SessionDep) -> TokenResponse:
    """Exchange a username and password (JSON, or the OAuth2 password form) for a short-lived
    JWT. Failed attempts are rate-limited per username and per client address."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.json()
        if not isinstance(body, dict):
            raise InvalidInput("Send a JSON object with 'username' and 'password'.")
    else:
        body = dict(await request.form(max_files=0, max_fields=10))
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidInput("Both 'username' and 'password' are required.")
    authenticator: Authenticator = request.app.state.authenticator
    try:
        principal = await authenticator.by_password(username, password, _client(request))
    except Unauthenticated:
        await begin_write(session)
        _audit(request, session, username[:150], "auth.login_failed")
        await session.commit()
        raise
    record = await authenticator.user_record(username)
    assert record is not None
    token, lifetime = authenticator.issue_access_token(principal, record.password_changed)
    await begin_write(session)
    _audit(request, session, username, "auth.login")
    await session.commit()
    return TokenResponse(access_token=token, expires_in=lifetime)


# -- users ---------------------------------------------------------------------------------------


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


@router.post("/users", status_code=201, tags=["users"])
async def create_user(request: Request, payload: NewUser, session: SessionDep) -> dict[str, Any]:
    """Create a user (administrators only)."""
    admin = _admin(request)
    await begin_write(session)
    user = await accounts.create_user(
        session, payload.username, payload.password, is_admin=payload.is_admin
    )
    _audit(
        request,
        session,
        admin.username,
        "user.create",
        target=user.username,
        detail={"is_admin": user.is_admin},
    )
    await session.commit()
    return accounts.user_view(user)


@router.get("/users", tags=["users"])
async def list_users(request: Request, session: SessionDep) -> list[dict[str, Any]]:
    """Every user (administrators only)."""
    _admin(request)
    return [accounts.user_view(u) for u in await accounts.list_users(session)]


@router.patch("/users/{username}", tags=["users"])
async def change_user(
    request: Request, username: str, payload: UserChange, session: SessionDep, cache: CacheDep
) -> dict[str, Any]:
    """Change a password (yourself or, for administrators, anyone), admin flag or active state
    (administrators only). Takes effect from the next request on."""
    principal = _principal(request)
    own_password_only = (
        principal.username == username
        and payload.is_admin is None
        and payload.is_active is None
        and principal.token_scope is None
    )
    if not own_password_only:
        _admin(request)
    await begin_write(session)
    user = await accounts.update_user(
        session,
        username,
        password=payload.password,
        is_admin=payload.is_admin,
        is_active=payload.is_active,
    )
    changed = sorted(k for k, v in payload.model_dump().items() if v is not None)
    _audit(
        request,
        session,
        principal.username,
        "user.update",
        target=username,
        detail={"changed": changed},
    )
    await session.commit()
    await forget_user(cache, username)
    return accounts.user_view(user)


@router.delete("/users/{username}", status_code=204, tags=["users"])
async def delete_user(
    request: Request, username: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Delete a user with their permissions and tokens (administrators only)."""
    admin = _admin(request)
    if admin.username == username:
        raise Conflict("You cannot delete your own account.")
    await begin_write(session)
    await accounts.delete_user(session, username)
    _audit(request, session, admin.username, "user.delete", target=username)
    await session.commit()
    await forget_user(cache, username)
    return Response(status_code=204)


# -- repositories --------------------------------------------------------------------------------


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


def _repository_json(view: RepositoryView, *, show_secrets: bool = False) -> dict[str, Any]:
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


async def _apply(request: Request, session: SessionDep, spec: RepositoryConfig) -> RepositoryView:
    settings = request.app.state.backends.settings
    for upstream in spec.upstreams:
        await check_upstream_url(upstream.url, allow_private=settings.allow_private_upstreams)
    view = await apply_repository(session, spec)
    request.app.state.directory.forget()
    return view


def _spec(data: dict[str, Any]) -> RepositoryConfig:
    try:
        return RepositoryConfig.model_validate(data)
    except ValueError as exc:
        raise InvalidInput(
            str(exc).splitlines()[-1] if str(exc) else "Invalid repository."
        ) from exc


@router.post("/repositories", status_code=201, tags=["repositories"])
async def create_repository(
    request: Request, payload: NewRepository, session: SessionDep
) -> dict[str, Any]:
    """Create a hosted, proxy or group repository (administrators only)."""
    admin = _admin(request)
    await begin_write(session)
    if await find_repository(session, payload.storage, payload.name) is not None:
        raise Conflict(f"Repository '{payload.storage}/{payload.name}' already exists.")
    spec = _spec(payload.model_dump())
    view = await _apply(request, session, spec)
    _audit(
        request,
        session,
        admin.username,
        "repository.create",
        target=view.path,
        detail={"type": view.type, "visibility": view.visibility},
    )
    await session.commit()
    return _repository_json(await load_repository(session, view.storage, view.name))


@router.get("/repositories", tags=["repositories"])
async def list_all_repositories(request: Request, session: SessionDep) -> list[dict[str, Any]]:
    """The repositories you may read."""
    principal: Principal = request.state.principal
    return [
        _repository_json(v)
        for v in await list_repositories(session)
        if allowed(principal, v, "read")
    ]


async def _visible(
    request: Request, session: SessionDep, storage: str, name: str, level: str
) -> RepositoryView:
    view = await load_repository(session, storage, name)
    principal: Principal = request.state.principal
    require_read(principal, view)
    if level == "admin":
        require_admin(principal, view)
    return view


@router.get("/repositories/{storage}/{name}", tags=["repositories"])
async def get_repository(
    request: Request, storage: str, name: str, session: SessionDep
) -> dict[str, Any]:
    """One repository's settings (members, upstreams without passwords, TTL, visibility)."""
    return _repository_json(await _visible(request, session, storage, name, "read"))


@router.patch("/repositories/{storage}/{name}", tags=["repositories"])
async def change_repository(
    request: Request, storage: str, name: str, payload: RepositoryChange, session: SessionDep
) -> dict[str, Any]:
    """Change type, visibility, upstreams, members or TTL (the repository's admins). Switching
    a repository that holds uploaded files to another type is refused, saying so."""
    principal = _principal(request)
    await begin_write(session)
    view = await _visible(request, session, storage, name, "admin")
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
    spec = _spec(current | changes)
    updated = await _apply(request, session, spec)
    _audit(
        request,
        session,
        principal.username,
        "repository.update",
        target=updated.path,
        detail={"changed": sorted(payload.model_dump(exclude_unset=True))},
    )
    await session.commit()
    return _repository_json(await load_repository(session, storage, name))


@router.delete("/repositories/{storage}/{name}", status_code=204, tags=["repositories"])
async def delete_repository(
    request: Request,
    storage: str,
    name: str,
    session: SessionDep,
    force: Annotated[bool, Query(description="also delete a repository that holds files")] = False,
) -> Response:
    """Delete a repository (administrators only). One that holds uploaded files is refused
    unless `force=true`; its files' bytes stay in the blob store until collected."""
    admin = _admin(request)
    await begin_write(session)
    repo = await find_repository(session, storage, name)
    if repo is None:
        raise NotFound(f"Repository '{storage}/{name}' does not exist.")
    held = (
        await session.exec(select(File.id).where(File.repository_id == repo.id).limit(1))
    ).first()
    if held is not None and not force:
        raise Conflict(
            f"Repository '{storage}/{name}' holds uploaded files; deleting it would orphan them. "
            "Repeat with ?force=true to delete it anyway."
        )
    await session.delete(repo)
    _audit(
        request,
        session,
        admin.username,
        "repository.delete",
        target=f"{storage}/{name}",
        detail={"force": force},
    )
    await session.commit()
    request.app.state.directory.forget()
    return Response(status_code=204)


class PermissionIn(BaseModel):
    """A user's level on a repository."""

    level: Literal["read", "write", "admin"]


@router.put("/repositories/{storage}/{name}/permissions/{username}", tags=["repositories"])
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
    principal = _principal(request)
    await begin_write(session)
    await _visible(request, session, storage, name, "admin")
    await accounts.grant(session, username, storage, name, payload.level)
    _audit(
        request,
        session,
        principal.username,
        "permission.set",
        target=f"{storage}/{name}",
        detail={"user": username, "level": payload.level},
    )
    await session.commit()
    await forget_user(cache, username)
    return {"repository": f"{storage}/{name}", "username": username, "level": payload.level}


@router.delete(
    "/repositories/{storage}/{name}/permissions/{username}",
    status_code=204,
    tags=["repositories"],
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
    principal = _principal(request)
    await begin_write(session)
    await _visible(request, session, storage, name, "admin")
    await accounts.grant(session, username, storage, name, None)
    _audit(
        request,
        session,
        principal.username,
        "permission.remove",
        target=f"{storage}/{name}",
        detail={"user": username},
    )
    await session.commit()
    await forget_user(cache, username)
    return Response(status_code=204)


@router.get("/repositories/{storage}/{name}/permissions", tags=["repositories"])
async def list_permissions(
    request: Request, storage: str, name: str, session: SessionDep
) -> list[dict[str, str]]:
    """Who has which level on the repository (the repository's admins)."""
    view = await _visible(request, session, storage, name, "admin")
    rows = await session.exec(
        select(User.username, Permission.level)
        .join(User, col(User.id) == col(Permission.user_id))
        .where(Permission.repository_id == view.id)
        .order_by(col(User.username))
    )
    return [{"username": u, "level": level} for u, level in rows.all()]


# -- API tokens ----------------------------------------------------------------------------------


class NewTokenIn(BaseModel):
    """An API token to create for yourself."""

    name: str
    repositories: list[str]
    scope: Literal["read", "write"] = "read"
    expires_at: datetime | None = None


@router.post("/tokens", status_code=201, tags=["tokens"])
async def create_token(
    request: Request, payload: NewTokenIn, session: SessionDep
) -> dict[str, Any]:
    """Create an API token for yourself. The `token` value is shown this once; use it as the
    password of user `__token__`, or as `Authorization: Bearer <token>`."""
    principal = _principal(request)
    if principal.token_id is not None:
        raise Forbidden("API tokens cannot create API tokens; sign in with your password.")
    expires = payload.expires_at
    if expires is not None and expires.tzinfo is None:
        raise InvalidInput("expires_at needs a timezone, e.g. 2027-01-01T00:00:00Z.")
    await begin_write(session)
    owner = await accounts.get_user(session, principal.username or "")
    created = await accounts.create_token(
        session,
        owner,
        name=payload.name,
        repositories=payload.repositories,
        scope=payload.scope,
        expires_at=expires,
    )
    _audit(
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
    return accounts.token_view(created.row, principal.username) | {"token": created.value}


@router.get("/tokens", tags=["tokens"])
async def list_tokens(
    request: Request,
    session: SessionDep,
    all_users: Annotated[bool, Query(alias="all", description="every user's (admins)")] = False,
) -> list[dict[str, Any]]:
    """Your API tokens (administrators: everyone's with `all=true`); never their secrets."""
    principal = _principal(request)
    if all_users:
        _admin(request)
    tokens = await accounts.list_tokens(session, None if all_users else principal.user_id)
    owners = {u.id: u.username for u in await accounts.list_users(session)}
    return [accounts.token_view(t, owners.get(t.user_id)) for t in tokens]


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
async def revoke_token(
    request: Request, token_id: int, session: SessionDep, cache: CacheDep
) -> Response:
    """Revoke a token (its owner, or an administrator); refused from the next request on."""
    principal = _principal(request)
    await begin_write(session)
    token = await accounts.get_token(session, token_id)
    if token.user_id != principal.user_id and not (
        principal.is_admin and principal.token_scope is None
    ):
        raise NotFound(f"Token {token_id} does not exist.")
    await accounts.revoke_token(session, token)
    _audit(request, session, principal.username, "token.revoke", target=f"token:{token_id}")
    await session.commit()
    await forget_token(cache, token.public_id)
    return Response(status_code=204)


# -- audit ---------------------------------------------------------------------------------------


@router.get("/audit", tags=["audit"])
async def audit(
    request: Request,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="page: events older than this id")] = None,
    action: str | None = None,
    actor: str | None = None,
) -> JSONResponse:
    """Audit events, newest first (administrators only)."""
    _admin(request)
    events = await accounts.audit_events(
        session, limit=limit, before_id=before, action=action, actor=actor
    )
    return JSONResponse(
        [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "source_ip": e.source_ip,
                "detail": e.detail,
            }
            for e in events
        ],
        headers={"Cache-Control": "private, no-store"},
    )
