"""Dependency aliases shared by every service: route signatures read as a list of needs.

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a worker thread,
which costs more than the work they do. Everything comes from the process's `Runtime`
(`app.state.runtime`, set by the app's lifespan).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.internal_jwt import HEADER
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import Cache
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.web.base_url import base_url
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.shared.web.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The process's runtime."""
    return request.app.state.runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request, closed (and rolled back if open) afterwards."""
    async with runtime_of(request).backends.sessions() as session:
        yield session


async def get_cache(request: Request) -> Cache:
    """The process's cache."""
    return runtime_of(request).backends.cache


async def get_directory(request: Request) -> RepositoryDirectory:
    """The process's repository directory."""
    return runtime_of(request).directory


async def get_pages(request: Request) -> PageCache:
    """The process's rendered-page cache."""
    return runtime_of(request).pages


async def get_base_url(request: Request) -> str:
    """The external base URL for links in this request's response."""
    return base_url(request, runtime_of(request).backends.settings)


async def get_principal(request: Request) -> Principal:
    """The caller of this request, from the gateway's internal token (401 without one)."""
    return runtime_of(request).verifier.principal(request.headers.get(HEADER))


SessionDep = Annotated[AsyncSession, Depends(get_session)]
CacheDep = Annotated[Cache, Depends(get_cache)]
DirectoryDep = Annotated[RepositoryDirectory, Depends(get_directory)]
PagesDep = Annotated[PageCache, Depends(get_pages)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
