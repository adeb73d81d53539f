"""The gateway's authentication: from an Authorization header to a Principal.

Accepted: HTTP Basic with a username and password, Basic with `__token__` and an API token,
`Bearer <API token>`, and `Bearer <access JWT>` from `POST /api/v1/auth/token`. Credentials that
do not verify are refused with 401, never downgraded to anonymous.

Cost per request: pip sends Basic credentials with every request, so verified work is cached:
user and token records for RECORD_TTL seconds (dropped at once by `forget_user`/`forget_token`
when the management API changes them; concurrent misses share one database load, and each
distinct cached value is decoded once), and successful argon2 checks under a hash of (stored
hash, password), so a changed password misses that cache by construction.

Password guesses are throttled per (account, address) and per account with a growing delay
(`throttle`: nobody's guesses lock anyone else out; tokens are never throttled), and every
refused credential, whatever the path, is audited (`failure_audit`, itself rate-limited).
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import anyio
import jwt
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.credentials import parse_basic
from wheelyard.shared.auth.failure_audit import FailureAudit
from wheelyard.shared.auth.internal_jwt import ALGORITHM, KeyPair
from wheelyard.shared.auth.passwords import hash_password, verify_password
from wheelyard.shared.auth.principal import ANONYMOUS, Principal
from wheelyard.shared.auth.throttle import LoginThrottle
from wheelyard.shared.auth.tokens import looks_like_token, secret_matches, split_token
from wheelyard.shared.cache import Cache
from wheelyard.shared.concurrency import SingleFlight
from wheelyard.shared.db.models import ApiToken, Permission, Repository, Storage, User
from wheelyard.shared.errors import RateLimited, Unauthenticated, WheelyardError
from wheelyard.shared.memo import ByteLRU
from wheelyard.shared.metrics import AUTH_FAILURES

RECORD_TTL = 10.0
VERIFIED_TTL = 300.0
ACCESS_TOKEN_LIFETIME = 900
ACCESS_ISSUER = "wheelyard"
ACCESS_AUDIENCE = "wheelyard-api"
TOKEN_USERNAME = "__token__"  # noqa: S105  (the username clients send with a token)
#: Decoded user and token records remembered (keyed by their cached bytes), at most this many
#: bytes: a user's record grows with their permissions.
DECODED_RECORDS_BYTES = 8 * 1024 * 1024
_R = TypeVar("_R")


@dataclass(frozen=True)
class UserRecord:
    """What authentication needs to know about a user (cached, never holds a secret in clear)."""

    id: int
    username: str
    password_hash: str
    is_admin: bool
    is_active: bool
    #: When the password last changed, in microseconds since the epoch. Access tokens carry
    #: it (`pv`); whole seconds would let a token issued just before a change outlive it.
    password_changed: int
    permissions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TokenRecord:
    """What authentication needs to know about an API token (only the secret's hash)."""

    id: int
    public_id: str
    user_id: int
    username: str
    secret_hash: str
    scope: str
    repositories: tuple[str, ...]
    expires_at: float | None
    revoked: bool


def _user_key(username: str) -> str:
    return "auth:user:" + hashlib.blake2b(username.encode(), digest_size=16).hexdigest()


def _token_key(public_id: str) -> str:
    return f"auth:token:{public_id}"


async def forget_user(cache: Cache, username: str) -> None:
    """Drop the cached record of `username` (after a password, permission or state change)."""
    await cache.delete(_user_key(username))


async def forget_token(cache: Cache, public_id: str) -> None:
    """Drop the cached record of a token (after revocation)."""
    await cache.delete(_token_key(public_id))


async def load_user_record(session: AsyncSession, username: str) -> UserRecord | None:
    """The user's record with their per-repository permissions, from the database."""
    user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None or user.id is None:
        return None
    rows = await session.exec(
        select(Storage.name, Repository.name, Permission.level)
        .join(Repository, col(Repository.id) == col(Permission.repository_id))
        .join(Storage, col(Storage.id) == col(Repository.storage_id))
        .where(Permission.user_id == user.id)
    )
    perms = tuple(sorted((f"{s}/{r}", level) for s, r, level in rows.all()))
    return UserRecord(
        id=user.id,
        username=user.username,
        password_hash=user.password_hash,
        is_admin=user.is_admin,
        is_active=user.is_active,
        password_changed=_microseconds(user.password_changed_at),
        permissions=perms,
    )


#: The metric label of each audited authentication path (`wheelyard_auth_failures_total`);
#: anything else (a client's unknown scheme) is counted as `unsupported`, never by its name.
_METRIC_METHODS = {
    "basic": "password",
    "sign-in": "password",
    "ui-sign-in": "password",
    "password-change": "password",
    "basic-token": "token",
    "bearer-token": "token",
    "jwt": "access_token",
}


class Authenticator:
    """Turns Authorization headers into Principals; see the module docstring."""

    def __init__(
        self, sessions: Any, cache: Cache, keys: KeyPair, *, audit: FailureAudit | None = None
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._keys = keys
        # When a record expires, every request in flight for it misses at once (32 clients
        # of one CI user): one database load serves them all instead of one load each.
        self._loading: SingleFlight[str, bytes] = SingleFlight()
        self._records: ByteLRU[bytes, Any] = ByteLRU(DECODED_RECORDS_BYTES)
        self._throttle = LoginThrottle(cache)
        self._audit = audit or FailureAudit(sessions, cache)

    async def authenticate(self, authorization: str | None, client: str | None) -> Principal:
        """The caller named by `authorization` (ANONYMOUS when there is none); refusals are
        counted by credential kind (`wheelyard_auth_failures_total`)."""
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                username, password = parse_basic(authorization)
            except Unauthenticated as exc:
                raise await self._refused(exc, "basic", "malformed credentials", client) from None
            if username == TOKEN_USERNAME:
                return await self._by_token(password, client, "basic-token")
            return await self.by_password(username, password, client, method="basic")
        if scheme == "bearer":
            value = value.strip()
            if looks_like_token(value):
                return await self._by_token(value, client, "bearer-token")
            return await self._by_access_token(value, client)
        raise await self._refused(
            Unauthenticated("Unsupported authorization scheme; use Basic or Bearer."),
            scheme[:20] or "none",
            "unsupported scheme",
            client,
        )

    async def by_password(
        self, username: str, password: str, client: str | None, *, method: str = "sign-in"
    ) -> Principal:
        """The user `username` if `password` is theirs. Attempts are throttled and failures
        audited (`method` says which path: basic, sign-in, password-change...)."""
        try:
            attempt = await self._throttle.check(username, client)
        except RateLimited as exc:
            raise await self._refused(exc, method, "throttled", client, username) from None
        record = await self._user(username)
        if record is None or not record.is_active:
            # Pay for one argon2 check anyway, so the answer's timing does not tell which
            # usernames exist (failures are throttled, so this cannot be used to load us).
            await anyio.to_thread.run_sync(verify_password, _dummy_hash(), password)
        ok = record is not None and record.is_active and await self._password_ok(record, password)
        if not ok or record is None:
            await self._throttle.failed(attempt)
            raise await self._refused(
                Unauthenticated("Invalid username or password."),
                method,
                _unusable(record) or "wrong password",
                client,
                username,
            )
        await self._throttle.succeeded(attempt)
        return _principal(record)

    def issue_access_token(self, principal: Principal, password_changed: int) -> tuple[str, int]:
        """A short-lived access JWT for a user who just proved their password."""
        assert self._keys.private is not None and principal.username is not None
        now = int(time.time())
        claims = {
            "sub": principal.username,
            "iss": ACCESS_ISSUER,
            "aud": ACCESS_AUDIENCE,
            "iat": now,
            "exp": now + ACCESS_TOKEN_LIFETIME,
            "pv": password_changed,
        }
        return jwt.encode(claims, self._keys.private, algorithm=ALGORITHM), ACCESS_TOKEN_LIFETIME

    async def user_record(self, username: str) -> UserRecord | None:
        """The (cached) record of `username`."""
        return await self._user(username)

    async def _by_access_token(self, token: str, client: str | None) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._keys.public,
                algorithms=[ALGORITHM],
                audience=ACCESS_AUDIENCE,
                issuer=ACCESS_ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise await self._refused(
                Unauthenticated("Invalid or expired access token."),
                "jwt",
                f"invalid access token ({exc.__class__.__name__})",
                client,
            ) from exc
        subject = str(claims["sub"])
        record = await self._user(subject)
        # A password change ends the sessions started with the old password.
        if record is None or not record.is_active or claims.get("pv") != record.password_changed:
            reason = _unusable(record) or "password changed since it was issued"
            raise await self._refused(
                Unauthenticated("Invalid or expired access token."), "jwt", reason, client, subject
            )
        return _principal(record)

    async def _by_token(self, value: str, client: str | None, method: str) -> Principal:
        parts = split_token(value)
        record = await self._token(parts[0]) if parts else None
        secret = parts[1] if parts else value
        if not secret_matches(secret, record.secret_hash if record else None) or record is None:
            raise await self._refused(
                Unauthenticated("Invalid API token."),
                method,
                "unknown token" if record is None else "wrong secret",
                client,
                record.username if record else None,
                f"token:{record.id}" if record else (f"token:wy_{parts[0]}_" if parts else None),
            )
        target = f"token:{record.id}"
        if record.revoked:
            error, reason = "This API token has been revoked.", "revoked token"
        elif record.expires_at is not None and record.expires_at <= time.time():
            error, reason = "This API token has expired.", "expired token"
        else:
            owner = await self._user(record.username)
            if owner is not None and owner.is_active:
                return _token_principal(owner, record)
            error, reason = "The owner of this API token is not active.", "inactive owner"
        raise await self._refused(
            Unauthenticated(error), method, reason, client, record.username, target
        )

    async def _refused(
        self,
        error: WheelyardError,
        method: str,
        reason: str,
        client: str | None,
        username: str | None = None,
        target: str | None = None,
    ) -> WheelyardError:
        """`error`, once the failure is counted and audited."""
        label = "malformed" if reason == "malformed credentials" else _METRIC_METHODS.get(method)
        AUTH_FAILURES.labels(label or "unsupported").inc()
        await self._audit.record(
            method=method, reason=reason, address=client, username=username, target=target
        )
        return error

    async def _password_ok(self, record: UserRecord, password: str) -> bool:
        key = (
            "cred:"
            + hashlib.blake2b(
                f"{record.password_hash}\0{password}".encode(), digest_size=32
            ).hexdigest()
        )
        if await self._cache.get(key) is not None:
            return True
        ok = await anyio.to_thread.run_sync(verify_password, record.password_hash, password)
        if ok:
            await self._cache.set(key, b"1", ttl=VERIFIED_TTL)
        return ok

    async def _user(self, username: str) -> UserRecord | None:
        key = _user_key(username)
        raw = await self._cache.get(key)
        if raw is None:
            raw = await self._loading.run(key, lambda: self._load_user(key, username))
        return self._decoded(raw, _user_from)

    async def _load_user(self, key: str, username: str) -> bytes:
        async with self._sessions() as session:
            record = await load_user_record(session, username)
        raw = json.dumps(None if record is None else asdict(record)).encode()
        await self._cache.set(key, raw, ttl=RECORD_TTL)
        return raw

    async def _token(self, public_id: str) -> TokenRecord | None:
        key = _token_key(public_id)
        raw = await self._cache.get(key)
        if raw is None:
            raw = await self._loading.run(key, lambda: self._load_token(key, public_id))
        return self._decoded(raw, _token_from)

    async def _load_token(self, key: str, public_id: str) -> bytes:
        async with self._sessions() as session:
            row = (
                await session.exec(
                    select(ApiToken, User.username)
                    .join(User, col(User.id) == col(ApiToken.user_id))
                    .where(ApiToken.public_id == public_id)
                )
            ).first()
        record = None
        if row is not None:
            token, username = row
            assert token.id is not None
            record = TokenRecord(
                id=token.id,
                public_id=token.public_id,
                user_id=token.user_id,
                username=username,
                secret_hash=token.secret_hash,
                scope=token.scope,
                repositories=tuple(token.repositories),
                expires_at=token.expires_at.timestamp() if token.expires_at else None,
                revoked=token.revoked_at is not None,
            )
        raw = json.dumps(None if record is None else asdict(record)).encode()
        await self._cache.set(key, raw, ttl=RECORD_TTL)
        return raw

    def _decoded(self, raw: bytes, build: Callable[[dict[str, Any]], _R]) -> _R | None:
        # Records are immutable and keyed by their exact cached bytes, so decoding once per
        # distinct value is safe; the least recently used go past the byte budget.
        hit = self._records.get(raw)
        if hit is not None:
            return cast(_R, hit)
        data = json.loads(raw)
        record = None if data is None else build(data)
        if record is not None:
            self._records.put(raw, record)
        return record


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(moment: datetime) -> int:
    # Exact integer arithmetic: a float timestamp has too few digits for microseconds.
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _principal(record: UserRecord) -> Principal:
    return Principal(
        username=record.username,
        user_id=record.id,
        is_admin=record.is_admin,
        permissions=record.permissions,
    )


def _unusable(record: UserRecord | None) -> str | None:
    """Why `record` cannot sign in at all, for the audit log; None when it can."""
    if record is None:
        return "unknown user"
    return None if record.is_active else "inactive user"


def _token_principal(owner: UserRecord, token: TokenRecord) -> Principal:
    return Principal(
        username=owner.username,
        user_id=owner.id,
        is_admin=owner.is_admin,
        permissions=owner.permissions,
        token_id=token.id,
        token_scope=token.scope,
        token_repositories=frozenset(token.repositories),
    )


def _user_from(data: dict[str, Any]) -> UserRecord:
    data["permissions"] = tuple(tuple(p) for p in data["permissions"])
    return UserRecord(**data)


def _token_from(data: dict[str, Any]) -> TokenRecord:
    data["repositories"] = tuple(data["repositories"])
    return TokenRecord(**data)
