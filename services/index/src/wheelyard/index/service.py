"""The hosted read path: simple pages, the PyPI JSON API, files and project data (search is
`wheelyard.shared.domain.search`, shared with the web interface).

No HTTP here: functions take plain values and return plain values or raise domain errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.domain.hosted import (
    ProjectRef,
    find_project,
    list_scope,
    project_list,
    project_page,
    project_scope,
    release_infos,
    repository_serial,
)
from wheelyard.shared.domain.policy import chain_of, page_variant, screen_page
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging import pypi_json
from wheelyard.shared.packaging.simple.model import JSON_V1
from wheelyard.shared.packaging.simple.render_html import render_index_html, render_project_html
from wheelyard.shared.packaging.simple.render_json import render_index_json, render_project_json
from wheelyard.shared.routes import file_path, repository_path
from wheelyard.shared.web.pagecache import CachedPage, PageCache

SessionSource = Callable[[], AsyncSession]


async def simple_project(
    db: SessionSource,
    pages: PageCache,
    *,
    repo: RepositoryView,
    name: str,
    media: str,
    base: str,
) -> CachedPage:
    """The rendered simple page of project `name` (normalized) as `media`; NotFound if absent.

    `db` is called only on a cache miss, so a hit costs no database session at all.
    """
    project: ProjectRef | None = None

    async def load_serial() -> int | None:
        nonlocal project
        project = await find_project(db(), repo.id, name)
        return project.serial if project else None

    serial = await pages.serial(project_scope(repo.id, name), load_serial)
    if serial is None:
        raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")

    async def render() -> bytes:
        ref = project or await find_project(db(), repo.id, name)
        if ref is None:
            raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
        page = await project_page(
            db(), base=base, storage=repo.storage, repo=repo.name, project=ref
        )
        if chain:
            page = screen_page(lambda: page, chain, datetime.now(UTC))
        return render_project_json(page) if media == JSON_V1 else render_project_html(page)

    chain = chain_of(repo.policy)
    variant = f"{media}|{base}" + page_variant(chain, time.time())
    return await pages.page(project_scope(repo.id, name), serial, variant, render)


async def simple_index(
    db: SessionSource, pages: PageCache, *, repo: RepositoryView, media: str
) -> CachedPage:
    """The rendered root page of the repository (relative links, so no base URL needed)."""

    async def load_serial() -> int:
        return await repository_serial(db(), repo.id)

    serial = await pages.serial(list_scope(repo.id), load_serial)
    assert serial is not None

    async def render() -> bytes:
        projects = await project_list(db(), repo.id)
        return render_index_json(projects) if media == JSON_V1 else render_index_html(projects)

    return await pages.page(list_scope(repo.id), serial, media, render)


async def pypi_project_json(
    session: AsyncSession, *, repo: RepositoryView, name: str, base: str, version: str | None
) -> bytes:
    """The PyPI JSON API document for a project, or for one release when `version` is given."""
    project = await find_project(session, repo.id, name)
    if project is None:
        raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
    releases = await _release_infos(session, repo, project, base)
    project_url = f"{base}{repository_path(repo.storage, repo.name)}/pypi/{project.name}/"
    if version is None:
        return pypi_json.render_pypi_project_json(
            name=project.display_name,
            releases=releases,
            last_serial=project.serial,
            project_url=project_url,
        )
    wanted = _canonical(version)
    for release in releases:
        if _canonical(release.version) == wanted:
            return pypi_json.render_pypi_release_json(
                name=project.display_name,
                release=release,
                last_serial=project.serial,
                project_url=project_url,
            )
    raise NotFound(f"Version '{version}' of '{name}' does not exist in '{repo.path}'.")


def _canonical(version: str) -> str:
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version


async def _release_infos(
    session: AsyncSession, repo: RepositoryView, project: ProjectRef, base: str
) -> list[pypi_json.ReleaseInfo]:
    def url_for(version: str, filename: str) -> str:
        return base + file_path(repo.storage, repo.name, project.name, version, filename)

    return await release_infos(session, project, url_for, chain_of(repo.policy))


async def project_details(
    session: AsyncSession, *, repo: RepositoryView, name: str, base: str
) -> dict[str, Any]:
    """Everything a project page shows: versions, files and metadata of each release."""
    project = await find_project(session, repo.id, canonicalize_name(name))
    if project is None:
        raise NotFound(f"Project '{name}' does not exist in '{repo.path}'.")
    releases = await _release_infos(session, repo, project, base)
    latest = pypi_json.latest_version(releases)
    ordered = sorted(releases, key=lambda r: _version_or_zero(r.version), reverse=True)
    return {
        "repository": repo.path,
        "name": project.name,
        "display_name": project.display_name,
        "status": project.status,
        "latest_version": latest.version if latest else None,
        "versions": [
            {
                "version": r.version,
                "yanked": r.yanked,
                "yanked_reason": r.yanked_reason,
                "metadata": dict(r.metadata),
                "files": [
                    {
                        "filename": f.filename,
                        "url": f.url,
                        "size": f.size,
                        "sha256": f.sha256,
                        "packagetype": f.packagetype,
                        "python_version": f.python_version,
                        "requires_python": f.requires_python,
                        "upload_time": f.upload_time.isoformat() if f.upload_time else None,
                        "core_metadata_sha256": f.core_metadata_sha256,
                    }
                    for f in r.files
                ],
            }
            for r in ordered
        ],
    }


def _version_or_zero(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")
