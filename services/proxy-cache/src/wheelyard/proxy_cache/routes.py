"""HTTP routes of the proxy-cache service besides the simple API (which
`wheelyard.shared.web.fastpath.simple_routes` and `HotPaths` serve with `handlers`): the PyPI
JSON API of proxy and group repositories (`pypi_api`), the cache API and pre-fetch jobs
(`prefetch`). Redirects use relative Locations so they keep whatever prefix the client used
(the root `/pypi/...` alias included).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from packaging.utils import canonicalize_name

from wheelyard.proxy_cache.handlers import proxy_of, readable
from wheelyard.proxy_cache.prefetch import run_job
from wheelyard.shared import routes
from wheelyard.shared.auth.access import missing, require_admin, require_write
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.domain import prefetch_jobs
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import (
    InvalidInput,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthenticated,
)
from wheelyard.shared.packaging.lockfiles import MAX_LOCK_BYTES, TargetPlatforms, read_lock
from wheelyard.shared.web.context import RequestContext
from wheelyard.shared.web.deps import DirectoryDep, PrincipalDep, SessionDep
from wheelyard.shared.web.pages import pypi_json_response

router = APIRouter()
#: Pre-fetch jobs one process runs at once.
MAX_JOBS = 4
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


async def _writable_proxy(
    directory: DirectoryDep, principal: Principal, storage: str, repo: str
) -> RepositoryView:
    """`storage/repo` if the caller may write to it (401 anonymous, before any lookup; a
    repository they may not read answers as a missing one; 403 read-only)."""
    if not principal.authenticated:
        raise Unauthenticated("Authentication required to pre-fetch into a repository.")
    view = await directory.get(storage, repo)
    if view is None:
        raise missing(principal, f"{storage}/{repo}")
    require_write(principal, view)
    return view


async def _body(request: Request) -> str:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_LOCK_BYTES:
            raise TooLarge(f"The lockfile is larger than {MAX_LOCK_BYTES} bytes.")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The lockfile is not UTF-8 text.") from None


@router.post(routes.PREFETCH.template, status_code=202, summary="Pre-fetch a lockfile's files")
async def prefetch(
    request: Request,
    storage: str,
    repo: str,
    directory: DirectoryDep,
    principal: PrincipalDep,
    platform: Annotated[list[str] | None, Query()] = None,
    python_version: str | None = None,
) -> JSONResponse:
    """Fetch every file a lockfile names (the request body: a pylock.toml, a uv.lock or a
    requirements file with == pins) and its `.metadata` into proxy repository `storage/repo`,
    pinned, in the background. `platform` (repeatable) and `python_version` choose the wheels
    of a requirements file's pins. Answers 202 with the job's id and URL; poll it. Needs the
    write level on the repository (401 without credentials, 403 without the right)."""
    view = await _writable_proxy(directory, principal, storage, repo)
    if view.type != "proxy":
        raise InvalidInput(
            f"'{view.path}' is a {view.type} repository; pre-fetching fills a proxy repository"
        )
    proxy = proxy_of(request)
    if len(proxy.jobs) >= MAX_JOBS:
        # Each job fetches a few files at once; many at once would crowd out installs.
        raise RateLimited(
            f"{MAX_JOBS} pre-fetch jobs are running on this server; try again later.",
            retry_after=30,
        )
    lock = read_lock(await _body(request), source="the request body")
    targets = TargetPlatforms(tuple(platform or ()), python_version)
    targets.wheel_matches(())  # refuses a malformed --python-version now, not in the job
    job_id = await prefetch_jobs.create(proxy.pages.sessions, view.id, principal.username)
    proxy.start_job(run_job(proxy, view, job_id, [lock], targets), name=f"prefetch-{job_id}")
    location = f"prefetch/{job_id}"
    return JSONResponse(
        {"id": job_id, "status": "queued", "url": location},
        status_code=202,
        headers={"Location": location},
    )


@router.get(routes.PREFETCH_JOB.template, summary="A pre-fetch job's progress")
async def prefetch_job(
    storage: str,
    repo: str,
    job: str,
    directory: DirectoryDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> JSONResponse:
    """A pre-fetch job: status (queued, running, done, or abandoned when its process
    stopped), counts, and every file's outcome once done. Any replica answers. Needs the
    write level on the repository, like starting one."""
    view = await _writable_proxy(directory, principal, storage, repo)
    found = await prefetch_jobs.find(session, view.id, job)
    if found is None:
        raise NotFound(f"Pre-fetch job '{job}' does not exist in '{view.path}'.")
    return JSONResponse(prefetch_jobs.document(found), headers={"Cache-Control": "no-store"})


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
