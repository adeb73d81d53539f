"""HTTP routes of the proxy-cache service besides the simple API (which
`wheelyard.shared.web.fastpath.simple_routes` and `HotPaths` serve with `handlers`): the PyPI
JSON API of proxy and group repositories (`pypi_api`) and the cache API. Redirects use relative
Locations so they keep whatever prefix the client used (the root `/pypi/...` alias included).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from packaging.utils import canonicalize_name

from wheelyard.proxy_cache.handlers import proxy_of, readable
from wheelyard.shared import routes
from wheelyard.shared.auth.access import require_admin
from wheelyard.shared.errors import NotFound, Unauthenticated
from wheelyard.shared.web.context import RequestContext
from wheelyard.shared.web.deps import DirectoryDep, PrincipalDep
from wheelyard.shared.web.pages import pypi_json_response

router = APIRouter()
READ = sorted(routes.READ)


async def _pypi_json(
    request: Request, storage: str, repo: str, project: str, version: str | None
) -> Response:
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
        pypi = proxy_of(request).pypi
        return await pypi_json_response(
            request, view, project, version, lambda name: pypi.document(ctx, view, name, version)
        )


@router.api_route(routes.PYPI_PROJECT.templates[0], methods=READ, summary="PyPI JSON: project")
@router.api_route(routes.PYPI_PROJECT.templates[1], methods=READ, include_in_schema=False)
async def pypi_project(request: Request, storage: str, repo: str, project: str) -> Response:
    """The PyPI JSON document of a project in a proxy or group repository: from the hosted
    members (groups), else the upstream's own JSON API, else built from the simple page; every
    file URL points through this repository."""
    return await _pypi_json(request, storage, repo, project, None)


@router.api_route(routes.PYPI_RELEASE.templates[0], methods=READ, summary="PyPI JSON: release")
@router.api_route(routes.PYPI_RELEASE.templates[1], methods=READ, include_in_schema=False)
async def pypi_release(
    request: Request, storage: str, repo: str, project: str, version: str
) -> Response:
    """The PyPI JSON document of one release (no `releases` key)."""
    return await _pypi_json(request, storage, repo, project, version)


@router.delete(routes.EXPIRE_CACHE.template, status_code=204, summary="Refresh a cached page")
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
        for member_storage, member_name in view.member_refs:
            found = await directory.get(member_storage, member_name)
            if found is not None and found.type == "proxy":
                targets.append(found)
    else:
        raise NotFound(f"Repository '{view.path}' is not a proxy or group repository.")
    name = canonicalize_name(project)
    pages = proxy_of(request).pages
    for target in targets:
        await pages.expire(target, name)
    return Response(status_code=204)


@router.get(routes.PROJECT_DETAILS.template, summary="Project data (hosted repositories)")
async def project_details(request: Request, storage: str, repo: str, project: str) -> Response:
    """Project details are kept by hosted repositories only. The caller's right to read the
    repository is checked first, so the answer about a private repository is the one a
    missing repository gets."""
    async with RequestContext(request) as ctx:
        view = await readable(ctx, storage, repo)
    raise NotFound(
        f"Project details are served by hosted repositories; '{view.path}' is a {view.type} "
        f"repository (read /repositories/{view.path}/simple/{canonicalize_name(project)}/)."
    )
