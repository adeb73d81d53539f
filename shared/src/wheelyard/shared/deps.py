"""Dependency aliases shared by every service: route signatures read as a list of needs.

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a worker thread,
which costs more than the work they do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.internal_jwt import HEADER, Verifier
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.backends import Backends
from wheelyard.shared.cache import Cache
from wheelyard.shared.config import Settings
from wheelyard.shared.db.registry import RepositoryDirectory
from wheelyard.shared.pagecache import PageCache
from wheelyard.shared.storage import BlobStore
from wheelyard.shared.urls import base_url


async def get_backends(request: Request) -> Backends:
    """The process's backends, set by the app's lifespan."""
    return request.app.state.backends  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request, closed (and rolled back if open) afterwards."""
    async with request.app.state.backends.sessions() as session:
        yield session


async def get_settings(request: Request) -> Settings:
    """The process's settings."""
    return request.app.state.backends.settings  # type: ignore[no-any-return]


async def get_blobs(request: Request) -> BlobStore:
    """The process's blob store."""
    return request.app.state.backends.blobs  # type: ignore[no-any-return]


async def get_cache(request: Request) -> Cache:
    """The process's cache."""
    return request.app.state.backends.cache  # type: ignore[no-any-return]


async def get_directory(request: Request) -> RepositoryDirectory:
    """The process's short-lived repository lookup."""
    return request.app.state.directory  # type: ignore[no-any-return]


async def get_pages(request: Request) -> PageCache:
    """The process's rendered-page cache."""
    return request.app.state.pages  # type: ignore[no-any-return]


async def get_base_url(request: Request) -> str:
    """The external base URL for links in this request's response."""
    return base_url(request, request.app.state.backends.settings)


async def get_principal(request: Request) -> Principal:
    """The caller of this request, from the gateway's internal token (401 without one)."""
    verifier: Verifier = request.app.state.verifier
    return verifier.principal(request.headers.get(HEADER))


BackendsDep = Annotated[Backends, Depends(get_backends)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
CacheDep = Annotated[Cache, Depends(get_cache)]
DirectoryDep = Annotated[RepositoryDirectory, Depends(get_directory)]
PagesDep = Annotated[PageCache, Depends(get_pages)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
