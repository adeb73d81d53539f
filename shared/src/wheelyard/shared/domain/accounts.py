"""Managing users, permissions, API tokens and the audit log.

One implementation for the gateway's management API and the operator CLI. Functions take a
session and commit nothing themselves except where they say so; callers start writes with
`begin_write` and commit. Every change that affects authentication is followed by
`forget_user`/`forget_token` (the callers do it after the commit) so that it takes effect from
the next request on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.access import can_read
from wheelyard.shared.auth.passwords import hash_password
from wheelyard.shared.auth.principal import LEVELS, SCOPES, Principal
from wheelyard.shared.auth.tokens import NewToken, generate_token
from wheelyard.shared.db.models import ApiToken, AuditEvent, Permission, Repository, User, utcnow
from wheelyard.shared.domain.repositories import RepositoryView, find_repository, split_path
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,149}\Z")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def validate_username(username: str) -> str:
    """Usernames: 1-150 ASCII letters, digits, `.`, `_`, `-`, starting alphanumeric."""
    if not _USERNAME.match(username) or username == "__token__":
        raise InvalidInput(
            f"Invalid username {username!r}: use 1-150 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return username


def validate_password(password: str) -> str:
    """Passwords: at least 8 characters (and at most 1024, to bound hashing cost)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords must have at most {MAX_PASSWORD_LENGTH} characters.")
    return password


async def get_user(session: AsyncSession, username: str) -> User:
    """The user called `username`; NotFound otherwise."""
    user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None:
        raise NotFound(f"User '{username}' does not exist.")
    return user


async def create_user(
    session: AsyncSession, username: str, password: str, *, is_admin: bool = False
) -> User:
    """A new user; Conflict if the name is taken."""
    validate_username(username)
    validate_password(password)
    user = User(username=username, password_hash=hash_password(password), is_admin=is_admin)
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise Conflict(f"User '{username}' already exists.") from exc
    return user


async def update_user(
    session: AsyncSession,
    username: str,
    *,
    password: str | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's password, admin flag or active state."""
    user = await get_user(session, username)
    if password is not None:
        user.password_hash = hash_password(validate_password(password))
        user.password_changed_at = utcnow()
    if is_admin is not None:
        user.is_admin = is_admin
    if is_active is not None:
        user.is_active = is_active
    session.add(user)
    return user


async def delete_user(session: AsyncSession, username: str) -> None:
    """Remove a user with their permissions and tokens."""
    user = await get_user(session, username)
    await session.delete(user)


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, by name."""
    return list((await session.exec(select(User).order_by(col(User.username)))).all())


async def grant(
    session: AsyncSession, username: str, storage: str, repository: str, level: str | None
) -> Permission | None:
    """Set `username`'s level on `storage/repository` (None removes it)."""
    if level is not None and level not in LEVELS:
        raise InvalidInput(f"Invalid level {level!r}: use read, write or admin.")
    user = await get_user(session, username)
    repo = await find_repository(session, storage, repository)
    if repo is None:
        raise NotFound(f"Repository '{storage}/{repository}' does not exist.")
    await session.exec(
        delete(Permission).where(
            col(Permission.user_id) == user.id, col(Permission.repository_id) == repo.id
        )
    )
    if level is None:
        return None
    assert user.id is not None and repo.id is not None  # both loaded from the database
    permission = Permission(user_id=user.id, repository_id=repo.id, level=level)
    session.add(permission)
    return permission


@dataclass(frozen=True)
class CreatedToken:
    """A new API token: `value` is shown once and never stored."""

    row: ApiToken
    value: str


async def create_token(
    session: AsyncSession,
    owner: User,
    *,
    name: str,
    repositories: list[str],
    scope: str,
    expires_at: datetime | None,
    reader: Principal | None = None,
) -> CreatedToken:
    """A new API token of `owner` for `repositories` (`storage/repo` each) with `scope`.

    With `reader` (the caller asking for the token), a repository `reader` may not read is
    refused with the very message a missing one gets: the answer never tells who may not
    read a private repository whether it exists.
    """
    if scope not in SCOPES:
        raise InvalidInput(f"Invalid scope {scope!r}: use read or write.")
    if not name.strip() or len(name) > 150:
        raise InvalidInput("A token needs a name of 1-150 characters.")
    if not repositories:
        raise InvalidInput("A token must name at least one repository ('storage/repo').")
    for path in repositories:
        storage, repo = split_path(path, default_storage="")
        found = await find_repository(session, storage, repo) if storage and repo else None
        # One query either way, so that timing does not tell the two refusals apart either.
        if found is None or (
            reader is not None and not can_read(reader, _bare_view(found, storage))
        ):
            raise InvalidInput(f"Repository {path!r} does not exist (use 'storage/repo').")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at must be in the future.")
    assert owner.id is not None  # a stored user
    new: NewToken = generate_token()
    token = ApiToken(
        public_id=new.public_id,
        secret_hash=new.secret_hash,
        name=name.strip(),
        user_id=owner.id,
        scope=scope,
        repositories=sorted(set(repositories)),
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    return CreatedToken(token, new.value)


def _bare_view(row: Repository, storage: str) -> RepositoryView:
    # What the access rules look at (path and visibility), without loading members/upstreams.
    assert row.id is not None
    return RepositoryView(
        id=row.id,
        storage=storage,
        name=row.name,
        type=row.type,
        visibility=row.visibility,
        ttl=row.ttl,
        settings={},
    )


async def get_token(session: AsyncSession, token_id: int) -> ApiToken:
    """The token with id `token_id`; NotFound otherwise."""
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"Token {token_id} does not exist.")
    return token


async def revoke_token(session: AsyncSession, token: ApiToken) -> ApiToken:
    """Mark the token revoked (idempotent)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
    return token


async def list_tokens(session: AsyncSession, user_id: int | None) -> list[ApiToken]:
    """Tokens of one user, or of everyone when `user_id` is None."""
    stmt = select(ApiToken).order_by(col(ApiToken.id))
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list((await session.exec(stmt)).all())


def token_view(token: ApiToken, owner: str | None = None) -> dict[str, Any]:
    """A token as shown in listings: never the secret nor its hash."""
    return {
        "id": token.id,
        "name": token.name,
        "owner": owner,
        "scope": token.scope,
        "repositories": list(token.repositories),
        "prefix": f"wy_{token.public_id}_",
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def user_view(user: User) -> dict[str, Any]:
    """A user as shown in listings: never the password hash."""
    return {
        "username": user.username,
        "is_admin": user.is_admin,
        "is_active": user.is_active,
        "created_at": user.created_at.isoformat(),
    }


async def permissions_of(session: AsyncSession, repository_id: int) -> list[dict[str, str]]:
    """Who has which level on the repository, by username."""
    rows = await session.exec(
        select(User.username, Permission.level)
        .join(User, col(User.id) == col(Permission.user_id))
        .where(Permission.repository_id == repository_id)
        .order_by(col(User.username))
    )
    return [{"username": u, "level": level} for u, level in rows.all()]


def record(
    session: AsyncSession,
    *,
    actor: str | None,
    action: str,
    target: str | None = None,
    source_ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the current transaction (it never holds a secret)."""
    session.add(
        AuditEvent(
            actor=actor, action=action, target=target, source_ip=source_ip, detail=detail or {}
        )
    )


async def audit_events(
    session: AsyncSession,
    *,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
) -> list[AuditEvent]:
    """Audit events, newest first, optionally filtered (each filter an exact match); page
    with `before_id`."""
    stmt = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(col(AuditEvent.id) < before_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if target:
        stmt = stmt.where(AuditEvent.target == target)
    return list((await session.exec(stmt)).all())
