"""HTTP routes of the proxy-cache service besides the simple API (which
`wheelyard.shared.fastpath.simple_routes` and `HotPaths` serve with `handlers`): the cache API.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from packaging.utils import canonicalize_name

from wheelyard.proxy_cache import handlers
from wheelyard.shared.auth.access import require_admin
from wheelyard.shared.deps import DirectoryDep, PrincipalDep
from wheelyard.shared.errors import NotFound, Unauthenticated

router = APIRouter()
READ = ["GET", "HEAD"]
REPO = "/repositories/{storage}/{repo}"


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
