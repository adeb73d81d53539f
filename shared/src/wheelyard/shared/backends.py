"""Backends: the database, blob store and cache, opened once per process and closed once.

Every service's `create_app` takes a `Backends` (embedded mode shares one between the gateway
and all services) or opens its own from Settings (split mode).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.cache import Cache, open_cache
from wheelyard.shared.cache.degrading import DegradingCache
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.config import Settings
from wheelyard.shared.db.engine import create_engine, session_factory
from wheelyard.shared.db.schema import schema_lag
from wheelyard.shared.storage import BlobStore, open_blob_store
from wheelyard.shared.storage.s3_options import S3Options

log = logging.getLogger(__name__)

#: How long a readiness probe may wait for one part before calling it unreachable.
READINESS_TIMEOUT = 3.0
#: Without these nothing can be served (readiness fails); without the others requests still
#: succeed, some more slowly or not all of them (readiness reports them as degraded).
REQUIRED_PARTS = frozenset({"database", "migrations"})


@dataclass
class Backends:
    """The three stores of one process. Services share state only through these."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    cache: Cache

    @classmethod
    async def open(cls, settings: Settings) -> Backends:
        """Connect to the configured backends (lazily: nothing is contacted until used, except
        that the blob store starts cleaning up after crashed writes, `recover_leftovers`)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.effective_database_url)
        s3 = None
        if settings.s3_endpoint:
            s3 = S3Options(
                endpoint=settings.s3_endpoint,
                access_key=settings.s3_access_key or "",
                secret_key=settings.s3_secret_key or "",
                secure=settings.s3_secure,
                region=settings.s3_region,
            )
        blobs = open_blob_store(settings.effective_blob_url, s3=s3)
        await blobs.recover_leftovers()  # before this process writes a byte
        cache = open_cache(
            settings.cache_url,
            prefix=settings.cache_prefix,
            memory_bytes=settings.memory_cache_bytes,
        )
        if not isinstance(cache, MemoryCache):
            # A remote cache is an accelerator: when it is down we degrade, never fail.
            cache = DegradingCache(cache, MemoryCache(max_bytes=settings.memory_cache_bytes))
        return cls(settings, engine, session_factory(engine), blobs, cache)

    async def close(self) -> None:
        """Release every connection; safe to call once at shutdown."""
        for closer in (self.cache.close, self.blobs.close, self.engine.dispose):
            try:
                await closer()
            except Exception:  # shutdown must finish even if one backend is already gone
                log.exception("error while closing a backend")

    async def readiness(self) -> dict[str, str | None]:
        """Probe each part concurrently: `{part: None}` when fine, else an error text. Parts:
        database (reachable), migrations (the schema is this release's; left out while the
        database cannot be reached), blobs, cache."""

        async def probe(part: str, check: Awaitable[object]) -> tuple[str, str | None]:
            try:
                await asyncio.wait_for(check, READINESS_TIMEOUT)
            except TimeoutError:
                return part, f"{part} did not answer within {READINESS_TIMEOUT:.0f}s"
            except Exception as exc:
                return part, f"{part} unreachable: {getattr(exc, 'message', None) or exc}"
            return part, None

        lag: list[str | None] = []

        async def database() -> None:
            lag.append(await schema_lag(self.engine))

        results = dict(
            await asyncio.gather(
                probe("database", database()),
                probe("blobs", self.blobs.ping()),
                probe("cache", self.cache.ping()),
            )
        )
        if results["database"] is None:  # else whether the schema is current is unknown
            results["migrations"] = lag[0] if lag else None
        return results
