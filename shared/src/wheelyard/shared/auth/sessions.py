"""Browser sessions of the web interface: server-side, revocable, ended by a password change.

Signing in through the web interface starts a session: the browser keeps only an opaque
random id (256 bits, in an HttpOnly cookie set by the web layer); the session itself is kept
in the cache under a hash of that id, so a look at the cache gives nobody a usable cookie.
A session remembers its user, the user's password stamp at sign-in (`password_changed`, as
access tokens carry it) and its CSRF secret. It ends

- when the user signs out (`end` deletes it, on every replica at once),
- after `LIFETIME` seconds,
- when the user's password changes, the user is deactivated or deleted (`principal` compares
  the stamp and the state with the user's current record on every request),
- when the cache loses it (the cache is never the truth: losing a session signs the user out,
  it never lets anyone in).

Sessions open the web interface only; clients of the APIs authenticate with each request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import Cache

#: How long a session lasts after sign-in (seconds).
LIFETIME = 12 * 3600
#: The longest cookie value accepted (ids are 43 characters; anything longer is not ours).
_MAX_ID = 64


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser: who, with which password stamp, its CSRF secret, its expiry."""

    username: str
    password_changed: int
    csrf: str
    expires_at: float


def _key(session_id: str) -> str:
    return "ui:session:" + hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Starts, finds and ends browser sessions (see the module docstring)."""

    def __init__(self, cache: Cache, *, lifetime: int = LIFETIME) -> None:
        self._cache = cache
        self.lifetime = lifetime

    async def start(self, username: str, password_changed: int) -> tuple[str, BrowserSession]:
        """A new session of `username`: (the id for the cookie, the session)."""
        session_id = secrets.token_urlsafe(32)
        session = BrowserSession(
            username=username,
            password_changed=password_changed,
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + self.lifetime,
        )
        await self._cache.set(
            _key(session_id), json.dumps(asdict(session)).encode(), ttl=self.lifetime
        )
        return session_id, session

    async def find(self, session_id: str | None) -> BrowserSession | None:
        """The live session with this id, or None (unknown, ended, expired or malformed)."""
        if not session_id or len(session_id) > _MAX_ID:
            return None
        raw = await self._cache.get(_key(session_id))
        if raw is None:
            return None
        try:
            session = BrowserSession(**json.loads(raw))
        except (ValueError, TypeError):
            return None
        return session if session.expires_at > time.time() else None

    async def end(self, session_id: str | None) -> None:
        """End the session (signing out); ending an unknown one is not an error."""
        if session_id and len(session_id) <= _MAX_ID:
            await self._cache.delete(_key(session_id))

    async def principal(
        self, session_id: str | None, authenticator: Authenticator
    ) -> tuple[Principal, BrowserSession] | None:
        """The signed-in user of a live session, with their current permissions, or None.

        A session whose user changed their password since, was deactivated or deleted is
        ended here and gives None.
        """
        session = await self.find(session_id)
        if session is None:
            return None
        record = await authenticator.user_record(session.username)
        if (
            record is None
            or not record.is_active
            or record.password_changed != session.password_changed
        ):
            await self.end(session_id)
            return None
        principal = Principal(
            username=record.username,
            user_id=record.id,
            is_admin=record.is_admin,
            permissions=record.permissions,
        )
        return principal, session
