"""Dependency aliases shared by every service: route signatures read as a list of needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.credentials import Principal, authenticate
from wheelyard.shared.backends import Backends
from wheelyard.shared.cache import Cache
from wheelyard.shared.config import Settings
from wheelyard.shared.db.registry import RepositoryDirectory
from wheelyard.shared.pagecache import PageCache
from wheelyard.shared.storage import BlobStore
from wheelyard.shared.urls import base_url


def get_backends(request: Request) -> Backends:
    """The process's backends, set by the app's lifespan."""
    return request.app.state.backends  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request, closed (and rolled back if open) afterwards."""
    async with get_backends(request).sessions() as session:
        yield session


def get_settings(request: Request) -> Settings:
    """The process's settings."""
    return get_backends(request).settings


def get_blobs(request: Request) -> BlobStore:
    """The process's blob store."""
    return get_backends(request).blobs


def get_cache(request: Request) -> Cache:
    """The process's cache."""
    return get_backends(request).cache


def get_directory(request: Request) -> RepositoryDirectory:
    """The process's short-lived repository lookup."""
    return request.app.state.directory  # type: ignore[no-any-return]


def get_pages(request: Request) -> PageCache:
    """The process's rendered-page cache."""
    return request.app.state.pages  # type: ignore[no-any-return]


def get_base_url(request: Request) -> str:
    """The external base URL for links in this request's response."""
    return base_url(request, get_settings(request))


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The verified caller of this request (anonymous when no credentials were sent)."""
    backends = get_backends(request)
    return await authenticate(session, backends.cache, request.headers.get("authorization"))


BackendsDep = Annotated[Backends, Depends(get_backends)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
CacheDep = Annotated[Cache, Depends(get_cache)]
DirectoryDep = Annotated[RepositoryDirectory, Depends(get_directory)]
PagesDep = Annotated[PageCache, Depends(get_pages)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
