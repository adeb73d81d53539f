"""Named leases in the database: one holder at a time across every process that shares it.

Periodic maintenance (the retention sweep, blob garbage collection) must run on one replica at
a time, embedded or split, with or without a shared cache; the database is the one store every
process has. A lease is a row (`leases`) naming its holder and when it lapses: taking it is a
conditional update (or the first insert) that succeeds for one process only, so a holder that
dies loses it once `expires_at` passes. Each function runs and commits its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import Lease, utcnow

log = logging.getLogger(__name__)
SessionFactory = Callable[[], AsyncSession]


def holder_id() -> str:
    """A name for this holder, unique across processes and hosts (for logs and the row)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def acquire(sessions: SessionFactory, name: str, holder: str, ttl: float) -> bool:
    """Take (or renew) the lease `name` for `ttl` seconds if nobody else holds it; True if
    `holder` holds it now."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    async with sessions() as session:
        await begin_write(session)
        # A conditional update decides between concurrent takers: on Postgres the second
        # waits on the row lock and then finds the condition false; SQLite serialises writers.
        result = await session.exec(
            update(Lease)
            .where(
                col(Lease.name) == name,
                or_(col(Lease.expires_at) < now, col(Lease.holder) == holder),
            )
            .values(holder=holder, expires_at=expires)
        )
        if result.rowcount == 1:
            await session.commit()
            return True
        if await session.get(Lease, name) is not None:
            await session.rollback()
            return False
        session.add(Lease(name=name, holder=holder, expires_at=expires))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()  # another process inserted it first
            return False
        return True


async def release(sessions: SessionFactory, name: str, holder: str) -> None:
    """Give the lease up if `holder` holds it (so the next run need not wait for it to lapse)."""
    async with sessions() as session:
        await begin_write(session)
        await session.exec(
            update(Lease)
            .where(col(Lease.name) == name, col(Lease.holder) == holder)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


async def holder_of(sessions: SessionFactory, name: str) -> str | None:
    """Who holds `name` right now, or None."""
    async with sessions() as session:
        row = await session.get(Lease, name)
        if row is None or row.expires_at < utcnow():
            return None
        return row.holder


@contextlib.asynccontextmanager
async def held(
    sessions: SessionFactory, name: str, *, ttl: float = 120.0, holder: str | None = None
) -> AsyncIterator[bool]:
    """Hold `name` for the block if nobody else does (yields False, and holds nothing, if
    someone does), renewing it every `ttl / 3` seconds while the block runs and giving it up
    afterwards."""
    me = holder or holder_id()
    if not await acquire(sessions, name, me, ttl):
        yield False
        return

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await acquire(sessions, name, me, ttl):
                    log.error("lost the lease %s to another holder", name)
                    return
            except Exception:
                log.exception("renewing the lease %s failed", name)

    renewer = asyncio.create_task(renew())
    try:
        yield True
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(Exception):
            await release(sessions, name, me)
