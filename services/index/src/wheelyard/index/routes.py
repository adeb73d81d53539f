"""HTTP routes of the index service (hosted repositories, read side) besides the simple API,
which `wheelyard.shared.web.fastpath.simple_routes` and `HotPaths` serve with `handlers`: the PyPI
JSON API, project data and search. Redirects use relative Locations so they keep whatever
prefix the client used (PEP 503 allows the redirect; docs/standards.md §5).
"""

from __future__ import annotations

import xmlrpc.client as xmlrpc_client
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from wheelyard.index import service, xmlrpc
from wheelyard.shared import routes
from wheelyard.shared.auth.access import can_read, missing, require_read
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


@router.post(routes.XMLRPC.templates[0], summary="XML-RPC: search, list_packages")
@router.post(routes.XMLRPC.templates[1], include_in_schema=False)
async def xmlrpc_call(
    request: Request,
    storage: str,
    repo: str,
    session: SessionDep,
    directory: DirectoryDep,
    principal: PrincipalDep,
) -> Response:
    """PyPI's legacy XML-RPC API (`pip search`): `search({"name": [...], "summary": [...]},
    "and"|"or")` and `list_packages()`, over the hosted repositories behind this URL that you
    may read (a group's hosted members). `/pypi` at the root is the default group's."""
    view = await directory.get(storage, repo)
    if view is None or not can_read(principal, view):
        raise missing(principal, f"{storage}/{repo}")
    try:
        call = xmlrpc.parse_call(await _xml_body(request))
        within = await _searchable(directory, view)
        body = xmlrpc.result_response(await xmlrpc.answer(session, principal, within, call))
    except xmlrpc.Fault as fault:
        body = xmlrpc.fault_response(fault)
    # Results depend on who asks: never stored by a shared cache.
    return Response(body, media_type="text/xml", headers={"Cache-Control": "private, no-cache"})


async def _xml_body(request: Request) -> bytes:
    """The request body, refused (as a fault) when it is not XML or larger than allowed."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in xmlrpc.MEDIA_TYPES:
        raise xmlrpc.Fault(
            xmlrpc_client.INVALID_XMLRPC, f"send the call as text/xml, not {media_type!r}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > xmlrpc.MAX_BODY:
            raise xmlrpc.Fault(
                xmlrpc_client.INVALID_XMLRPC, f"the call is larger than {xmlrpc.MAX_BODY} bytes"
            )
    return bytes(body)


async def _searchable(directory: DirectoryDep, view: RepositoryView) -> list[str]:
    """The hosted repositories behind `view`, in order: itself, or a group's hosted members
    (depth first, each once); a proxy has none."""
    order: list[str] = []
    seen: set[str] = set()

    async def walk(current: RepositoryView) -> None:
        if current.path in seen:
            return
        seen.add(current.path)
        if current.type == "hosted":
            order.append(current.path)
        elif current.type == "group":
            for storage, name in current.member_refs:
                member = await directory.get(storage, name)
                if member is not None:
                    await walk(member)

    await walk(view)
    return order
