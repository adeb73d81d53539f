"""Project search across the hosted repositories a caller may read.

One implementation for `GET /api/v1/search` (index service) and the web interface's search
page (gateway), so both find and rank the same projects. Repositories the caller may not read
are left out before the query runs: a private project is never a hit, nor counted.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from packaging.utils import canonicalize_name
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.access import can_read
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.db.models import Project, Release
from wheelyard.shared.domain.repositories import RepositoryView, list_repositories
from wheelyard.shared.packaging import pypi_json

#: The most hits one search returns.
MAX_HITS = 100


@dataclass(frozen=True)
class SearchHit:
    """One project found: where it is, its names, its latest version and that one's summary."""

    repository: str
    name: str
    normalized_name: str
    version: str
    summary: str | None

    def as_json(self) -> dict[str, Any]:
        """The hit as the search API returns it."""
        return asdict(self)


def _rank(hit: SearchHit, wanted: str) -> tuple[int, str, str]:
    # Exact name, then names starting with the words, then names containing them, then
    # projects found by their summary only; alphabetical within each.
    name = hit.normalized_name
    if name == wanted:
        tier = 0
    elif name.startswith(wanted):
        tier = 1
    elif wanted in name:
        tier = 2
    else:
        tier = 3
    return (tier, name, hit.repository)


async def search_projects(
    session: AsyncSession,
    *,
    principal: Principal,
    query: str,
    limit: int = MAX_HITS,
    within: Collection[str] | None = None,
) -> list[SearchHit]:
    """Projects whose name or a release's summary contains `query` (case-insensitive; the name
    compared in its normalized form), in hosted repositories `principal` may read (and, when
    `within` is given, whose `storage/name` it lists), ranked (see `_rank`), at most `limit`.
    Each hit carries the latest version (PyPI's rule: not yanked, final before pre-release,
    then highest) and its summary."""
    words = query.strip()
    if not words:
        return []
    readable = await _readable(session, principal, within)
    if not readable:
        return []
    wanted = canonicalize_name(words)
    needle = f"%{_escape_like(words.lower())}%"
    summary_hit = (
        select(Release.id)
        .where(Release.project_id == Project.id, col(Release.summary).ilike(needle, escape="\\"))
        .exists()
    )
    matching = (
        select(Project.id)
        .where(col(Project.repository_id).in_(list(readable)))
        .where(or_(col(Project.name).like(f"%{_escape_like(wanted)}%", escape="\\"), summary_hit))
    )
    # Plain columns: a release's stored metadata (its README) is never loaded here.
    rows = await session.exec(
        select(  # type: ignore[call-overload]
            Project.id,
            Project.repository_id,
            Project.name,
            Project.display_name,
            Release.version,
            Release.yanked,
            Release.summary,
        )
        .join(Release, col(Release.project_id) == col(Project.id))
        .where(col(Project.id).in_(matching))
    )
    grouped: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows.all():
        grouped.setdefault(row[0], []).append(tuple(row))
    hits = []
    for releases in grouped.values():
        _, repository_id, name, display_name, *_ = releases[0]
        infos = [pypi_json.ReleaseInfo(version=r[4], yanked=r[5]) for r in releases]
        latest = pypi_json.latest_version(infos)
        assert latest is not None
        summary = next(r[6] for r in releases if r[4] == latest.version)
        hits.append(
            SearchHit(
                repository=readable[repository_id].path,
                name=display_name,
                normalized_name=name,
                version=latest.version,
                summary=summary,
            )
        )
    hits.sort(key=lambda h: _rank(h, wanted))
    return hits[:limit]


async def _readable(
    session: AsyncSession, principal: Principal, within: Collection[str] | None
) -> dict[int, RepositoryView]:
    # Repositories the caller may not read are left out before any query runs.
    return {
        repo.id: repo
        for repo in await list_repositories(session)
        if repo.type == "hosted"
        and (within is None or repo.path in within)
        and can_read(principal, repo)
    }


async def project_names(
    session: AsyncSession, *, principal: Principal, within: Collection[str] | None = None
) -> list[str]:
    """The name of every project in the hosted repositories `principal` may read (and, when
    `within` is given, whose `storage/name` it lists), each once, sorted by normalized name."""
    readable = await _readable(session, principal, within)
    if not readable:
        return []
    rows = await session.exec(
        select(Project.name, Project.display_name)
        .join(Release, col(Release.project_id) == col(Project.id))  # a project with a release
        .where(col(Project.repository_id).in_(list(readable)))
        .distinct()
    )
    names = {name: display for name, display in rows.all()}
    return [names[name] for name in sorted(names)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
