"""A lean per-request context for the hot read paths (simple pages, file downloads).

FastAPI's dependency injection costs more than the work of a cached page (about half of a
request's CPU time when measured), so the hottest routes take only the Request and use this:
the database session is opened lazily (a page-cache hit needs none) and the caller comes
from the gateway's internal token (verified once, then remembered until it expires).
"""

from __future__ import annotations

from types import TracebackType

from packaging.utils import canonicalize_name
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from wheelyard.shared.auth.internal_jwt import HEADER
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.backends import Backends
from wheelyard.shared.domain.hosted import (
    ProjectFiles,
    ProjectRef,
    StoredFile,
    find_project,
    project_files,
    project_scope,
)
from wheelyard.shared.domain.policy import Decision, for_download
from wheelyard.shared.domain.refusals import enforce
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.web.base_url import base_url
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.shared.web.runtime import Runtime


class RequestContext:
    """What a hot route needs, created on demand; use as `async with RequestContext(request)`."""

    __slots__ = ("_principal", "_session", "request", "runtime")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.runtime: Runtime = request.app.state.runtime
        self._session: AsyncSession | None = None
        self._principal: Principal | None = None

    @property
    def backends(self) -> Backends:
        """The process's stores."""
        return self.runtime.backends

    @property
    def pages(self) -> PageCache:
        """The process's rendered-page cache."""
        return self.runtime.pages

    @property
    def session(self) -> AsyncSession:
        """The request's database session (no connection is taken until it is used)."""
        if self._session is None:
            self._session = self.runtime.backends.sessions()
        return self._session

    def session_source(self) -> AsyncSession:
        """`self.session` as a callable, for code that needs a session only on a miss."""
        return self.session

    async def repository(self, storage: str, name: str) -> RepositoryView | None:
        """The repository view, from memory when known (no session is created then)."""
        return await self.runtime.directory.get(storage, name)

    async def hosted_file(
        self, repo: RepositoryView, project: str, version: str, filename: str
    ) -> StoredFile | None:
        """The live file `filename` (or its `.metadata`) of `project` in hosted `repo`, or None.

        Answered from memory: the project's file records are kept per project serial by the
        page cache (`PageCache.derived`), so a hot file costs no database round trip, and a
        file deleted by a commit is gone for every request that starts after it (the writer
        moves the serial forward after committing, as for pages)."""
        name = canonicalize_name(project)
        scope = project_scope(repo.id, name)
        ref: ProjectRef | None = None

        async def load_serial() -> int | None:
            nonlocal ref
            ref = await find_project(self.session, repo.id, name)
            return ref.serial if ref else None

        serial = await self.pages.serial(scope, load_serial)
        if serial is None:
            return None

        async def build() -> ProjectFiles | None:
            found = ref or await find_project(self.session, repo.id, name)
            return None if found is None else await project_files(self.session, found)

        files = await self.pages.derived(scope, serial, "files", build, ProjectFiles.size)
        return files.find(version, filename) if files is not None else None

    async def principal(self) -> Principal:
        """The caller, as the gateway's internal token says (Unauthenticated without one)."""
        if self._principal is None:
            self._principal = self.runtime.verifier.principal(self.request.headers.get(HEADER))
        return self._principal

    async def refuse_unless_served(
        self, decision: Decision, view: RepositoryView, project: str, filename: str
    ) -> None:
        """Nothing when `decision` serves `filename` of `view`; otherwise refuse it for this
        caller (403, counted, audited: `refusals.enforce`)."""
        if for_download(decision, filename).served:
            return  # the common case costs no caller lookup
        principal = await self.principal()
        client = self.request.client
        await enforce(
            decision,
            self.backends,
            repository=view.path,
            project=project,
            filename=filename,
            actor=principal.username,
            address=client.host if client else None,
        )

    @property
    def base_url(self) -> str:
        """The external base URL for links."""
        return base_url(self.request, self.runtime.backends.settings)

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
