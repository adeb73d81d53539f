"""HTTP routes of the index service (hosted repositories, read side).

Redirects use relative Locations so they keep whatever prefix the client used (the root alias
`/simple/` or `/repositories/default/all/simple/`), as the standards digest (§10, item 2) asks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from packaging.utils import canonicalize_name

from wheelyard.index import service
from wheelyard.shared.auth.access import require_read
from wheelyard.shared.auth.credentials import Principal
from wheelyard.shared.db.registry import RepositoryView
from wheelyard.shared.deps import (
    BaseUrlDep,
    BlobsDep,
    DirectoryDep,
    PagesDep,
    PrincipalDep,
    SessionDep,
)
from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging.simple import content_type_for, if_none_match_matches, negotiate
from wheelyard.shared.pagecache import CachedPage
from wheelyard.shared.streaming import blob_response

router = APIRouter()
READ = ["GET", "HEAD"]
REPO = "/repositories/{storage}/{repo}"


async def _readable(
    session: SessionDep, directory: DirectoryDep, principal: Principal, storage: str, repo: str
) -> RepositoryView:
    view = await directory.get(session, storage, repo)
    if view is None or view.type != "hosted":
        raise NotFound(f"Repository '{storage}/{repo}' does not exist.")
    require_read(principal, view)
    return view


def _cache_control(request: Request, repo: RepositoryView, *, immutable: bool = False) -> str:
    # Anything fetched with credentials, or from a private repository, must never be stored by
    # a shared cache (reliability doc §3.4, artifact-keeper PR #3414).
    private = repo.visibility == "private" or "authorization" in request.headers
    if immutable:
        return ("private" if private else "public") + ", max-age=31536000, immutable"
    return "private, no-cache" if private else "public, max-age=0, must-revalidate"


def _page_response(
    request: Request, repo: RepositoryView, page: CachedPage, media: str
) -> Response:
    headers = {
        "ETag": page.etag,
        "Vary": "Accept, Authorization",
        "Cache-Control": _cache_control(request, repo),
    }
    if if_none_match_matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, headers=headers, media_type=content_type_for(media))


def _media(request: Request) -> str:
    return negotiate(request.headers.get("accept"), request.query_params.get("format"))


@router.api_route(REPO + "/simple", methods=READ, include_in_schema=False)
async def simple_root_without_slash() -> Response:
    """Every HTML URL ends in a slash (PEP 503)."""
    return RedirectResponse("simple/", status_code=301)


@router.api_route(REPO + "/simple/", methods=READ, summary="Simple index: project list")
async def simple_root(
    request: Request,
    storage: str,
    repo: str,
    session: SessionDep,
    directory: DirectoryDep,
    pages: PagesDep,
    principal: PrincipalDep,
) -> Response:
    """PEP 503/691 list of the repository's projects."""
    view = await _readable(session, directory, principal, storage, repo)
    media = _media(request)
    page = await service.simple_index(session, pages, repo=view, media=media)
    return _page_response(request, view, page, media)


@router.api_route(REPO + "/simple/{project}", methods=READ, include_in_schema=False)
async def simple_project_without_slash(project: str) -> Response:
    """Redirect to the normalized, slash-terminated project URL."""
    return RedirectResponse(f"{canonicalize_name(project)}/", status_code=301)


@router.api_route(REPO + "/simple/{project}/", methods=READ, summary="Simple index: project")
async def simple_project(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    session: SessionDep,
    directory: DirectoryDep,
    pages: PagesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
) -> Response:
    """PEP 503/691 page of one project, negotiated by Accept."""
    view = await _readable(session, directory, principal, storage, repo)
    name = canonicalize_name(project)
    if name != project:
        return RedirectResponse(f"../{name}/", status_code=301)
    media = _media(request)
    page = await service.simple_project(
        session, pages, repo=view, name=name, media=media, base=base
    )
    return _page_response(request, view, page, media)


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
    view = await _readable(session, directory, principal, storage, repo)
    name = canonicalize_name(project)
    if name != project:
        up = "../../" if version else "../"
        tail = f"{version}/json" if version else "json"
        return RedirectResponse(f"{up}{name}/{tail}", status_code=301)
    body = await service.pypi_project_json(
        session, repo=view, name=name, base=base, version=version
    )
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": _cache_control(request, view), "Vary": "Authorization"},
    )


@router.api_route(REPO + "/pypi/{project}/json", methods=READ, summary="PyPI JSON API: project")
@router.api_route(REPO + "/pypi/{project}/json/", methods=READ, include_in_schema=False)
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


@router.api_route(
    REPO + "/pypi/{project}/{version}/json", methods=READ, summary="PyPI JSON API: release"
)
@router.api_route(REPO + "/pypi/{project}/{version}/json/", methods=READ, include_in_schema=False)
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


@router.api_route(REPO + "/{project}/{version}/{filename}", methods=READ, summary="Download")
async def download(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str,
    filename: str,
    session: SessionDep,
    directory: DirectoryDep,
    principal: PrincipalDep,
    blobs: BlobsDep,
) -> Response:
    """A distribution file, or its PEP 658 metadata when the name ends in `.metadata`."""
    view = await _readable(session, directory, principal, storage, repo)
    stored = await service.find_file(
        session, repo=view, project=project, version=version, filename=filename
    )
    etag = f'"{stored.sha256}"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(request, view, immutable=True)}
    if if_none_match_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return blob_response(
        blobs,
        stored.blob_key,
        size=stored.size,
        method=request.method,
        range_header=request.headers.get("range"),
        headers=headers,
    )


@router.get("/api/v1/repositories/{storage}/{repo}/projects/{project}", summary="Project data")
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
    view = await _readable(session, directory, principal, storage, repo)
    details = await service.project_details(session, repo=view, name=project, base=base)
    return JSONResponse(details, headers={"Cache-Control": _cache_control(request, view)})


@router.get("/api/v1/search", summary="Search projects")
async def search(
    q: Annotated[str, Query(min_length=1, max_length=200, description="words to look for")],
    session: SessionDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Projects whose name or summary contains `q`, across the repositories you may read."""
    hits = await service.search(session, principal=principal, query=q)
    return {"query": q, "results": hits}
