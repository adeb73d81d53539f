"""Browsing: the home page, search, repository, project, version and file pages.

Everything is read through the shared domain queries (`wheelyard.shared.domain`), for the
repositories the viewer may read only: a repository they may not read is answered exactly like
one that does not exist, and is never listed, counted or searched. Pages of private
repositories are `Cache-Control: private`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from packaging.utils import canonicalize_name
from starlette.responses import RedirectResponse, Response

from wheelyard.gateway.ui import urls
from wheelyard.gateway.ui.readme import render_readme
from wheelyard.gateway.ui.render import UiRoute, pages_of
from wheelyard.gateway.ui.snippets import install_snippets, publish_snippets
from wheelyard.gateway.ui.viewer import Viewer, viewer_of
from wheelyard.shared.auth.access import allowed, can_read
from wheelyard.shared.db.models import utcnow
from wheelyard.shared.domain import browse, proxied
from wheelyard.shared.domain.hosted import ProjectRef, find_project
from wheelyard.shared.domain.repositories import RepositoryView, list_repositories
from wheelyard.shared.domain.search import search_projects
from wheelyard.shared.domain.upstream_health import health_of
from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging import pypi_json
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import SimpleFile
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
PAGE_SIZE = 50
Page = Annotated[int, Query(ge=1, le=100_000)]


async def readable(request: Request, viewer: Viewer, storage: str, repo: str) -> RepositoryView:
    """The repository, if the viewer may read it; NotFound (the same for both) otherwise."""
    view = await request.app.state.runtime.directory.get(storage, repo)
    if view is None or not can_read(viewer.principal, view):
        raise NotFound(f"Repository '{storage}/{repo}' does not exist.")
    return view


async def _readable_members(
    request: Request, viewer: Viewer, view: RepositoryView
) -> AsyncIterator[RepositoryView]:
    """A group's members, in order, that exist and the viewer may read (looked up one at a
    time, as they are asked for)."""
    directory = request.app.state.runtime.directory
    for storage, name in view.member_refs:
        member = await directory.get(storage, name)
        if member is not None and can_read(viewer.principal, member):
            yield member


def _repository_page(
    request: Request, viewer: Viewer, view: RepositoryView, template: str, **context: Any
) -> Response:
    """A page about repository `view` (`repo` in the template): private when the repository
    is."""
    return pages_of(request).render(
        request, viewer, template, private=view.visibility == "private", repo=view, **context
    )


async def _hosted_releases(
    session: SessionDep, view: RepositoryView, name: str
) -> tuple[ProjectRef | None, list[browse.ReleaseEntry]]:
    """Project `name` of hosted repository `view` and its releases with live files (newest
    first): `(None, [])` when the repository has no such project."""
    ref = await find_project(session, view.id, name)
    releases = await browse.releases_of_project(session, ref.id) if ref else []
    return ref, releases


def _project_redirect(
    storage: str, repo: str, name: str, version: str | None, status_code: int
) -> Response:
    """A redirect to project `name` of `storage/repo`, at `version` when one is given."""
    target = urls.project(storage, repo, name)
    return RedirectResponse(target + (f"{version}/" if version else ""), status_code=status_code)


@router.get("/")
async def home(request: Request, session: SessionDep) -> Response:
    """Search box, the repositories the viewer may read, the newest uploads among them."""
    viewer = await viewer_of(request)
    repos = [v for v in await list_repositories(session) if can_read(viewer.principal, v)]
    hosted = [v.id for v in repos if v.type == "hosted"]
    counts = await browse.project_counts(session, hosted)
    counts |= await proxied.cached_counts(session, [v.id for v in repos if v.type == "proxy"])
    uploads = await browse.recent_uploads(session, hosted, limit=15)
    return pages_of(request).render(
        request,
        viewer,
        "home.html",
        private=any(v.visibility == "private" for v in repos),
        repositories=repos,
        counts=counts,
        uploads=uploads,
        by_id={v.id: v for v in repos},
    )


@router.get("/search")
async def search(
    request: Request,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The same search as `GET /api/v1/search`, as a page."""
    viewer = await viewer_of(request)
    hits = await search_projects(session, principal=viewer.principal, query=q) if q else []
    paths = {h.repository for h in hits}
    return pages_of(request).render(
        request,
        viewer,
        "search.html",
        private=bool(hits),
        q=q,
        hits=hits,
        repositories=sorted(paths),
    )


@router.get("/repositories/{storage}/{repo}/")
async def repository(
    request: Request, storage: str, repo: str, session: SessionDep, page: Page = 1
) -> Response:
    """Kind, visibility, upstreams or members, its projects (paginated) or cached pages, and
    how to install from (and publish to) it."""
    viewer = await viewer_of(request)
    view = await readable(request, viewer, storage, repo)
    offset = (page - 1) * PAGE_SIZE
    context: dict[str, Any] = {"total": 0, "projects": [], "entries": [], "health": []}
    if view.type == "hosted":
        total, projects = await browse.project_listing(
            session, view.id, offset=offset, limit=PAGE_SIZE
        )
        context.update(total=total, projects=projects)
    elif view.type == "proxy":
        total, entries = await proxied.cached_entries(
            session, view.id, offset=offset, limit=PAGE_SIZE
        )
        health = await health_of(
            request.app.state.runtime.backends.cache, view.id, len(view.upstreams)
        )
        context.update(total=total, entries=entries, health=health, ttl=_ttl(request, view))
    return _repository_page(
        request,
        viewer,
        view,
        "repository.html",
        members=[m async for m in _readable_members(request, viewer, view)],
        page=page,
        pages=max(1, -(-context["total"] // PAGE_SIZE)),
        can_admin=allowed(viewer.principal, view, "admin"),
        install=install_snippets(viewer.base, view),
        publish=publish_snippets(viewer.base, view),
        now=utcnow(),
        **context,
    )


def _ttl(request: Request, view: RepositoryView) -> int:
    settings = request.app.state.runtime.backends.settings
    return view.ttl if view.ttl is not None else settings.pypi_proxy_ttl


@router.get("/repositories/{storage}/{repo}/projects/{project}/")
async def project(
    request: Request, storage: str, repo: str, project: str, session: SessionDep
) -> Response:
    """A project at its latest version."""
    return await _project_page(request, session, storage, repo, project, None)


@router.get("/repositories/{storage}/{repo}/projects/{project}/{version}/")
async def project_version(
    request: Request, storage: str, repo: str, project: str, version: str, session: SessionDep
) -> Response:
    """A project at one version."""
    return await _project_page(request, session, storage, repo, project, version)


async def _project_page(
    request: Request,
    session: SessionDep,
    storage: str,
    repo: str,
    project: str,
    version: str | None,
) -> Response:
    viewer = await viewer_of(request)
    view = await readable(request, viewer, storage, repo)
    name = canonicalize_name(project)
    if view.type == "group":
        member = await _member_with(request, viewer, session, view, name)
        if member is None:
            raise NotFound(f"Project '{name}' does not exist in '{view.path}'.")
        return _project_redirect(member.storage, member.name, name, version, 307)
    if name != project:
        return _project_redirect(storage, repo, name, version, 301)
    if view.type == "proxy":
        return await _proxied_project(request, viewer, session, view, name, version)
    ref, releases = await _hosted_releases(session, view, name)
    if ref is None or not releases:
        raise NotFound(f"Project '{name}' does not exist in '{view.path}'.")
    latest = browse.latest_release(releases)
    shown = browse.find_release(releases, version) if version else latest
    if shown is None:
        raise NotFound(f"Version '{version}' of '{name}' does not exist in '{view.path}'.")
    files = await browse.release_files(session, shown.id)
    meta = await browse.release_metadata(session, shown.id)
    cache = request.app.state.runtime.backends.cache
    readme = await render_readme(
        cache, meta.get("description"), meta.get("description_content_type")
    )
    return _repository_page(
        request,
        viewer,
        view,
        "project.html",
        project=ref,
        releases=releases,
        release=shown,
        latest=latest,
        files=files,
        meta=meta,
        urls_of_project=_project_urls(meta),
        readme=readme,
        install=install_snippets(viewer.base, view, ref.display_name),
        pin=f"{ref.display_name}=={shown.version}",
    )


def _project_urls(meta: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if meta.get("home_page"):
        found.append(("Homepage", meta["home_page"]))
    for label, url in (meta.get("project_urls") or {}).items():
        found.append((label, url))
    if meta.get("download_url"):
        found.append(("Download", meta["download_url"]))
    # Only web links become links: anything else is shown as text by the template.
    return [(label, url) for label, url in found if isinstance(url, str)]


async def _member_with(
    request: Request, viewer: Viewer, session: SessionDep, view: RepositoryView, name: str
) -> RepositoryView | None:
    """Where a group's project `name` is: the first member that has it (hosted members shadow
    proxies), among the members the viewer may read; None when none has it."""
    async for member in _readable_members(request, viewer, view):
        if member.type == "hosted":
            _ref, releases = await _hosted_releases(session, member, name)
            found = bool(releases)
        else:
            stored = await proxied.load(session, member.id, name)
            found = stored is not None and stored.usable
        if found:
            return member
    return None


@dataclass(frozen=True)
class ProxiedVersion:
    """A version listed by a proxy repository's stored page (yanked when all its files are)."""

    version: str
    yanked: bool


def _listed_versions(content: proxied.PageContent) -> list[ProxiedVersion]:
    """The versions of a stored page, newest first: one pass over its files (streamed from
    the stored column, in a worker thread), keeping nothing but the versions."""
    yanked: dict[str, bool] = {}
    for f, version in content.files_and_versions():
        yanked[version] = yanked.get(version, True) and bool(f.yanked)
    versions = [ProxiedVersion(v, y) for v, y in yanked.items()]
    versions.sort(key=lambda r: pypi_json.version_order_key(r.version), reverse=True)
    return versions


def _files_of_version(content: proxied.PageContent, version: str) -> list[SimpleFile]:
    """The files of one version of a stored page (another pass, keeping only those)."""
    return [f for f, listed in content.files_and_versions() if listed == version]


async def _proxied_content(
    session: SessionDep, view: RepositoryView, name: str
) -> proxied.PageContent:
    content = await proxied.load_content(session, view.id, name)
    if content is None:
        raise NotFound(
            f"Project '{name}' is not cached in '{view.path}': it is fetched from the "
            "upstream the first time a client asks for it."
        )
    return content


async def _proxied_project(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    view: RepositoryView,
    name: str,
    version: str | None,
) -> Response:
    content = await _proxied_content(session, view, name)
    versions = await to_thread.run_sync(_listed_versions, content)
    infos = [pypi_json.ReleaseInfo(version=v.version, yanked=v.yanked) for v in versions]
    latest = pypi_json.latest_version(infos)
    wanted = version or (latest.version if latest else None)
    shown = next((v for v in versions if v.version == wanted), None)
    if version and shown is None:
        raise NotFound(f"Version '{version}' of '{name}' is not listed in '{view.path}'.")
    files = await to_thread.run_sync(_files_of_version, content, shown.version) if shown else []
    # What this repository fetched and verified itself: a blob in the shared store may be
    # another repository's, and must not be reported (nor served) as this one's.
    fetched = await proxied.fetched_files(session, view.id, name)
    return _repository_page(
        request,
        viewer,
        view,
        "proxied_project.html",
        name=name,
        stored=content.row,
        versions=versions,
        shown=shown,
        latest=latest.version if latest else None,
        files=[(f, f.filename in fetched) for f in files],
        fresh=(time.time() - content.row.fetched_at) < _ttl(request, view),
        can_admin=allowed(viewer.principal, view, "admin"),
        install=install_snippets(viewer.base, view, name),
    )


@router.get("/repositories/{storage}/{repo}/projects/{project}/{version}/files/{filename}")
async def file_page(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str,
    filename: str,
    session: SessionDep,
) -> Response:
    """One file: digests, size, upload time and uploader, requires-python, download links."""
    viewer = await viewer_of(request)
    view = await readable(request, viewer, storage, repo)
    name = canonicalize_name(project)
    shown: dict[str, Any] | None = None
    if view.type == "proxy":
        shown = await _proxied_file(session, view, name, version, filename)
    elif view.type == "hosted":
        shown = await _hosted_file(session, view, name, version, filename)
    if shown is None:
        raise NotFound(f"File '{filename}' does not exist in '{view.path}'.")
    return _repository_page(request, viewer, view, "file.html", **shown)


async def _proxied_file(
    session: SessionDep, view: RepositoryView, name: str, version: str, filename: str
) -> dict[str, Any] | None:
    """The file page's facts of `filename`, as proxy repository `view`'s stored page of `name`
    lists it under `version`; None when it does not."""
    content = await _proxied_content(session, view, name)
    listed = await to_thread.run_sync(content.find, filename)
    if listed is None or listed_version(listed.filename) != version:
        return None
    fetched = await proxied.fetched_files(session, view.id, name)
    return {
        "name": name,
        "display_name": name,
        "version": version,
        "file": listed,
        "hosted": False,
        "cached": filename in fetched,
        "yanked": listed.yanked,
    }


async def _hosted_file(
    session: SessionDep, view: RepositoryView, name: str, version: str, filename: str
) -> dict[str, Any] | None:
    """The file page's facts of `filename`, a live file of `version` of project `name` in
    hosted repository `view`; None when it is not one."""
    ref, releases = await _hosted_releases(session, view, name)
    release = browse.find_release(releases, version)
    if ref is None or release is None:
        return None
    files = await browse.release_files(session, release.id)
    found = next((f for f in files if f.filename == filename), None)
    if found is None:
        return None
    return {
        "name": ref.name,
        "display_name": ref.display_name,
        "version": release.version,
        "file": found,
        "hosted": True,
        "cached": True,
        "yanked": release.yanked_reason or True if release.yanked else False,
    }
