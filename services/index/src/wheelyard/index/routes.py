"""HTTP routes of the index service (hosted repositories, read side) besides the simple API,
which `wheelyard.shared.web.fastpath.simple_routes` and `HotPaths` serve with `handlers`: the PyPI
JSON API, project data and search. Redirects use relative Locations so they keep whatever
prefix the client used (PEP 503 allows the redirect; docs/standards.md §5).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from wheelyard.index import service
from wheelyard.shared import routes
from wheelyard.shared.auth.access import missing, require_read
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.domain.search import search_projects
from wheelyard.shared.web.deps import BaseUrlDep, DirectoryDep, PrincipalDep, SessionDep
from wheelyard.shared.web.pages import cache_control, pypi_json_response

router = APIRouter()
READ = sorted(routes.READ)


async def _readable(
    directory: DirectoryDep, principal: Principal, storage: str, repo: str
) -> RepositoryView:
    view = await directory.get(storage, repo)
    if view is None or view.type != "hosted":
        raise missing(principal, f"{storage}/{repo}")
    require_read(principal, view)
    return view


async def _pypi_json(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str | None,
    session: SessionDep,
    directory: DirectoryDep,
    principal: Principal,
    base: str,
) -> Response:
    view = await _readable(directory, principal, storage, repo)
    return await pypi_json_response(
        request,
        view,
        project,
        version,
        lambda name: service.pypi_project_json(
            session, repo=view, name=name, base=base, version=version
        ),
    )


@router.api_route(routes.PYPI_PROJECT.templates[0], methods=READ, summary="PyPI JSON: project")
@router.api_route(routes.PYPI_PROJECT.templates[1], methods=READ, include_in_schema=False)
async def pypi_project(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    session: SessionDep,
    directory: DirectoryDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
) -> Response:
    """The PyPI JSON document of a project: latest release info, every release's files."""
    return await _pypi_json(
        request, storage, repo, project, None, session, directory, principal, base
    )


@router.api_route(routes.PYPI_RELEASE.templates[0], methods=READ, summary="PyPI JSON: release")
@router.api_route(routes.PYPI_RELEASE.templates[1], methods=READ, include_in_schema=False)
async def pypi_release(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str,
    session: SessionDep,
    directory: DirectoryDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
) -> Response:
    """The PyPI JSON document of one release (no `releases` key)."""
    return await _pypi_json(
        request, storage, repo, project, version, session, directory, principal, base
    )


@router.get(routes.PROJECT_DETAILS.template, summary="Project data")
async def project_details(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    session: SessionDep,
    directory: DirectoryDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
) -> JSONResponse:
    """Versions, files and metadata (summary, description, license, classifiers, ...)."""
    view = await _readable(directory, principal, storage, repo)
    details = await service.project_details(session, repo=view, name=project, base=base)
    return JSONResponse(details, headers={"Cache-Control": cache_control(request, view)})


@router.get(routes.SEARCH.template, summary="Search projects")
async def search(
    q: Annotated[str, Query(min_length=1, max_length=200, description="words to look for")],
    session: SessionDep,
    principal: PrincipalDep,
) -> JSONResponse:
    """Projects whose name or summary contains `q`, across the hosted repositories you may
    read, ranked: exact name, names starting with `q`, names containing it, then summaries."""
    hits = await search_projects(session, principal=principal, query=q)
    body: dict[str, Any] = {"query": q, "results": [h.as_json() for h in hits]}
    # Results depend on who asks: never stored by a shared cache.
    return JSONResponse(body, headers={"Cache-Control": "private, no-cache"})
