"""Who is calling: HTTP Basic credentials verified against the users table.

A successful argon2 verification is remembered in the cache under a hash of (stored hash,
password), never the secret itself, so pip's per-request Basic auth does not pay argon2 every
time. A changed password changes the stored hash, and with it the key: the old password stops
working at the next request. Deactivated users are refused because the user row is read on
every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import anyio
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.passwords import verify_password
from wheelyard.shared.cache import Cache
from wheelyard.shared.db.models import User
from wheelyard.shared.errors import Unauthenticated

VERIFIED_TTL = 300.0


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a user, or anonymous (`username` None)."""

    username: str | None = None
    user_id: int | None = None
    is_admin: bool = False

    @property
    def authenticated(self) -> bool:
        """True for a verified user."""
        return self.username is not None


ANONYMOUS = Principal()


def parse_basic(header: str) -> tuple[str, str]:
    """(username, password) from an `Authorization: Basic ...` value; raises Unauthenticated."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthenticated("Unsupported authorization scheme; use HTTP Basic.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("Malformed Basic credentials.") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated("Malformed Basic credentials.")
    return username, password


async def authenticate(session: AsyncSession, cache: Cache, authorization: str | None) -> Principal:
    """The caller named by `authorization`; ANONYMOUS when there is none.

    Raises Unauthenticated for credentials that do not verify (never falls back to anonymous,
    so a typo in a password is reported rather than silently ignored).
    """
    if not authorization:
        return ANONYMOUS
    username, password = parse_basic(authorization)
    user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None or not user.is_active:
        raise Unauthenticated("Invalid username or password.")
    key = (
        "cred:"
        + hashlib.blake2b(f"{user.password_hash}\0{password}".encode(), digest_size=32).hexdigest()
    )
    if await cache.get(key) is None:
        ok = await anyio.to_thread.run_sync(verify_password, user.password_hash, password)
        if not ok:
            raise Unauthenticated("Invalid username or password.")
        await cache.set(key, b"1", ttl=VERIFIED_TTL)
    return Principal(username=user.username, user_id=user.id, is_admin=user.is_admin)
