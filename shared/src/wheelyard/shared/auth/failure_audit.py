"""The audit trail of failed authentications, which a flood of them cannot turn into a flood
of database writes.

Every refused credential (Basic password, Basic `__token__`, Bearer API token, Bearer access
JWT, the sign-in endpoint, a malformed header, a throttled attempt) is offered here as an
`auth.failed` audit event. Writes are limited per client address and per account
(`per_source`, WHEELYARD_AUDIT_FAILURES_PER_MINUTE) and overall (`overall`,
WHEELYARD_AUDIT_FAILURES_PER_MINUTE_TOTAL) per WINDOW seconds; an event over a limit is only
counted, and the next event written carries that count in `detail.suppressed`
(and the first suppression in a while is logged as a warning), so the log says how much was
left out without a row per attempt. An audit write that fails (database down) is logged and
never changes the answer, which stays a 401 or 429.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from wheelyard.shared.auth.throttle import client_bucket
from wheelyard.shared.cache import Cache
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts

log = logging.getLogger(__name__)

ACTION = "auth.failed"
WINDOW = 60.0
_SUPPRESSED = "auditlimit:suppressed"
_SUPPRESSED_MEMORY = 7 * 86_400.0


class FailureAudit:
    """Writes `auth.failed` events within the limits of the module docstring."""

    def __init__(
        self, sessions: Any, cache: Cache, *, per_source: int = 20, overall: int = 300
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._per_source = per_source
        self._overall = overall

    async def record(
        self,
        *,
        method: str,
        reason: str,
        address: str | None,
        username: str | None = None,
        target: str | None = None,
    ) -> None:
        """Audit one failed authentication by `method` (basic, token, bearer-token, jwt,
        sign-in...) for `reason`; `username` is the name tried (or the token's owner), never
        a secret."""
        try:
            if not await self._within_limits(address, username):
                if await self._cache.incr(_SUPPRESSED, ttl=_SUPPRESSED_MEMORY) == 1:
                    log.warning(
                        "failed authentications arrive faster than they are audited; "
                        "counting the rest (see 'suppressed' on the next auth.failed event)"
                    )
                return
            detail: dict[str, Any] = {"method": method, "reason": reason}
            suppressed = await self._cache.get(_SUPPRESSED)
            if suppressed is not None:
                await self._cache.delete(_SUPPRESSED)
                detail["suppressed"] = int(suppressed)
            async with self._sessions() as session:
                await begin_write(session)
                accounts.record(
                    session,
                    actor=username[:150] if username else None,
                    action=ACTION,
                    target=target,
                    source_ip=address,
                    detail=detail,
                )
                await session.commit()
        except Exception as exc:  # the audit must never change the answer to the client
            log.warning("could not audit a failed authentication: %s", exc.__class__.__name__)

    async def _within_limits(self, address: str | None, username: str | None) -> bool:
        limits = [f"addr:{client_bucket(address)}"]
        if username:
            digest = hashlib.blake2b(username.lower().encode(), digest_size=16).hexdigest()
            limits.append(f"account:{digest}")
        within = True
        for key in limits:
            # Each counter is advanced, so that each one measures its whole stream.
            if await self._cache.incr(f"auditlimit:{key}", ttl=WINDOW) > self._per_source:
                within = False
        # The overall budget counts only what passed the others: one flooding address must
        # not use it up for everyone else.
        return within and await self._cache.incr("auditlimit:all", ttl=WINDOW) <= self._overall
