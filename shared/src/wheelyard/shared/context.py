"""A lean per-request context for the hot read paths (simple pages, file downloads).

FastAPI's dependency injection costs more than the work of a cached page (about half of a
request's CPU time when measured), so the hottest routes take only the Request and use this:
the database session is opened lazily (a page-cache hit needs none) and credentials are only
checked when the request carries them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from wheelyard.shared.auth.credentials import ANONYMOUS, Principal, authenticate
from wheelyard.shared.backends import Backends
from wheelyard.shared.db.registry import RepositoryDirectory, RepositoryView
from wheelyard.shared.pagecache import PageCache
from wheelyard.shared.urls import base_url


class RequestContext:
    """What a hot route needs, created on demand; use as `async with RequestContext(request)`."""

    __slots__ = ("_principal", "_session", "backends", "directory", "pages", "request")

    def __init__(self, request: Request, state: Any = None) -> None:
        state = state if state is not None else request.app.state
        self.request = request
        self.backends: Backends = state.backends
        self.directory: RepositoryDirectory = state.directory
        self.pages: PageCache = state.pages
        self._session: AsyncSession | None = None
        self._principal: Principal | None = None

    @property
    def session(self) -> AsyncSession:
        """The request's database session (no connection is taken until it is used)."""
        if self._session is None:
            self._session = self.backends.sessions()
        return self._session

    async def repository(self, storage: str, name: str) -> RepositoryView | None:
        """The repository view, from memory when known (no session is created then)."""
        return await self.directory.get(storage, name)

    def session_source(self) -> AsyncSession:
        """`self.session` as a callable, for code that needs a session only on a miss."""
        return self.session

    async def principal(self) -> Principal:
        """The verified caller; anonymous requests cost no database access."""
        if self._principal is None:
            header = self.request.headers.get("authorization")
            self._principal = (
                await authenticate(self.session, self.backends.cache, header)
                if header
                else ANONYMOUS
            )
        return self._principal

    @property
    def base_url(self) -> str:
        """The external base URL for links."""
        return base_url(self.request, self.backends.settings)

    async def __aenter__(self) -> RequestContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
