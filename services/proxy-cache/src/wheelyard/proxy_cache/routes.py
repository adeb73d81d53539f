"""HTTP routes of the proxy-cache service: proxy and group repositories, and the cache API.

Redirects use relative Locations so they keep whatever prefix the client used (the root alias
`/simple/` or `/repositories/default/all/simple/`). The hottest routes (simple pages,
downloads) are answered before this router by `wheelyard.shared.fastpath.HotPaths`; their
routes here document them and serve requests the fast path passes on.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from packaging.utils import canonicalize_name

from wheelyard.proxy_cache import handlers
from wheelyard.shared.auth.access import require_admin
from wheelyard.shared.deps import DirectoryDep, PrincipalDep
from wheelyard.shared.errors import NotFound, Unauthenticated
from wheelyard.shared.pages import project_name

router = APIRouter()
READ = ["GET", "HEAD"]
REPO = "/repositories/{storage}/{repo}"


@router.api_route(REPO + "/simple", methods=READ, include_in_schema=False)
async def simple_root_without_slash() -> Response:
    """Every HTML URL ends in a slash (PEP 503)."""
    return RedirectResponse("simple/", status_code=301)


@router.api_route(REPO + "/simple/", methods=READ, summary="Simple index: project list")
async def simple_root(request: Request, storage: str, repo: str) -> Response:
    """Projects of a proxy (those cached) or group (hosted members' plus cached) repository."""
    return await handlers.simple_root(request, storage, repo)


@router.api_route(REPO + "/simple/{project}", methods=READ, include_in_schema=False)
async def simple_project_without_slash(project: str) -> Response:
    """Redirect to the normalized, slash-terminated project URL."""
    return RedirectResponse(f"{project_name(project)}/", status_code=301)


@router.api_route(REPO + "/simple/{project}/", methods=READ, summary="Simple index: project")
async def simple_project(request: Request, storage: str, repo: str, project: str) -> Response:
    """PEP 503/691 page of one project (from the upstream, or the group's members)."""
    return await handlers.simple_project(request, storage, repo, project)


@router.api_route(REPO + "/{project}/{version}/{filename}", methods=READ, summary="Download")
async def download(
    request: Request, storage: str, repo: str, project: str, version: str, filename: str
) -> Response:
    """A distribution file, or its PEP 658 metadata when the name ends in `.metadata`."""
    return await handlers.download(request, storage, repo, project, version, filename)


@router.delete(
    "/api/v1/repositories/{storage}/{repo}/cache/{project}",
    status_code=204,
    summary="Refresh a cached project page",
)
async def expire_cached_page(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    directory: DirectoryDep,
    principal: PrincipalDep,
) -> Response:
    """Make the next request for `project` fetch its page from the upstream again, in full
    (no revalidation). On a group, every proxy member's copy is dropped. Needs the admin
    level on the repository (401 without credentials, 403 without the right)."""
    if not principal.authenticated:
        # Before the lookup: an anonymous caller learns nothing about which repositories exist.
        raise Unauthenticated("Authentication required to manage caches.")
    view = await directory.require(storage, repo)
    require_admin(principal, view)
    if view.type == "proxy":
        targets = [view]
    elif view.type == "group":
        targets = []
        for member in view.members:
            member_storage, _, member_name = member.partition("/")
            found = await directory.get(member_storage, member_name)
            if found is not None and found.type == "proxy":
                targets.append(found)
    else:
        raise NotFound(f"Repository '{view.path}' is not a proxy or group repository.")
    name = canonicalize_name(project)
    proxy = handlers.proxy_of(request)
    for target in targets:
        await proxy.pages.expire(target, name)
    return Response(status_code=204)
