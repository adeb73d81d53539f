"""The proxy-cache logic: proxy repositories (pages, files) and groups over ordered members.

No HTTP here beyond what `files` streams: functions take plain values and return plain values
or raise domain errors.

Groups and dependency confusion (reliability.md §1.3, standards.md §9): a project name that
exists in any hosted member the caller may read is served from the hosted members only (every
hosted member that has it, in member order); the proxies are not even asked, unless the group's
`settings["allow_upstream"]` lists the name (then the first proxy that knows it is merged in,
hosted files winning on equal filenames). Any other name comes from the first proxy member
that knows it. Members the caller may not read are skipped, so a private proxy member is never
contacted on behalf of someone who may not read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.proxy_cache.files import ProxyFiles
from wheelyard.proxy_cache.pages import CurrentPage, ProxyPages, linked_page, version_of
from wheelyard.proxy_cache.upstream import UpstreamClient
from wheelyard.shared.auth.access import can_read
from wheelyard.shared.backends import Backends
from wheelyard.shared.context import RequestContext
from wheelyard.shared.db.models import File, Project, Release
from wheelyard.shared.db.registry import RepositoryView
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.hosted import find_project, project_list, project_page, project_scope
from wheelyard.shared.packaging.simple import ProjectList, ProjectPage, SimpleFile


class ProxyService:
    """Everything the proxy-cache service keeps per process: the upstream client (with its
    circuit breakers), proxy pages and proxy files."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.client = UpstreamClient()
        self.pages = ProxyPages(
            sessions=backends.sessions,
            cache=backends.cache,
            client=self.client,
            default_ttl=backends.settings.pypi_proxy_ttl,
        )
        self.files = ProxyFiles(
            blobs=backends.blobs,
            cache=backends.cache,
            client=self.client,
            spool_dir=Path(backends.settings.data_dir) / "proxy-spool",
            redirect=backends.settings.blob_redirect,
        )

    async def aclose(self) -> None:
        """Stop fetches and close upstream connections."""
        await self.files.aclose()
        await self.client.aclose()


# -- groups -----------------------------------------------------------------------------------


@dataclass
class Resolution:
    """Where a group's project comes from: hosted members with their serials, and the proxy
    member (with its current page) when upstream files are listed."""

    hosted: list[tuple[RepositoryView, int]] = field(default_factory=list)
    proxy: tuple[RepositoryView, CurrentPage] | None = None

    def key(self) -> int:
        """A number that changes whenever the group's page of this project changes."""
        parts = [f"h{m.id}:{s}" for m, s in self.hosted]
        if self.proxy is not None:
            parts.append(f"p{self.proxy[0].id}:{self.proxy[1].version}")
        digest = hashlib.blake2s("|".join(parts).encode(), digest_size=7).digest()
        return int.from_bytes(digest, "big")


def allow_upstream(group: RepositoryView, name: str) -> bool:
    """True when the group explicitly lets upstream files of `name` merge with hosted ones."""
    listed = group.settings.get("allow_upstream") or ()
    if not isinstance(listed, list | tuple):
        return False
    return name in {canonicalize_name(str(n)) for n in listed}


async def readable_members(ctx: RequestContext, group: RepositoryView) -> list[RepositoryView]:
    """The group's members the caller may read, in member order."""
    principal = await ctx.principal()
    out = []
    for member in group.members:
        storage, _, repo = member.partition("/")
        view = await ctx.repository(storage, repo)
        # A token opens the group; the members are checked against the user's own rights.
        if view is not None and can_read(principal, view, through_group=True):
            out.append(view)
    return out


async def hosted_serial(ctx: RequestContext, member: RepositoryView, name: str) -> int:
    """The serial of `name` in hosted `member`, 0 when it has no such project.

    Goes through the page cache's serial hints, so the shadowing check costs a cache read;
    absence is remembered as 0, which the upload service's next serial (always >= 1)
    overrides at once (read-after-write: a new internal project shadows immediately).
    """

    async def load() -> int:
        ref = await find_project(ctx.session, member.id, name)
        return ref.serial if ref is not None else 0

    return await ctx.pages.serial(project_scope(member.id, name), load) or 0


async def resolve(
    ctx: RequestContext,
    proxy: ProxyService,
    group: RepositoryView,
    name: str,
    *,
    fresh: bool = True,
) -> Resolution:
    """Where `name` comes from in `group` (see the module docstring). NotFound when nowhere;
    the upstream's error when no member has it and a proxy could not be asked."""
    members = await readable_members(ctx, group)
    result = Resolution()
    for member in members:
        if member.type == "hosted":
            serial = await hosted_serial(ctx, member, name)
            if serial > 0:
                result.hosted.append((member, serial))
    if result.hosted and not allow_upstream(group, name):
        return result  # dependency-confusion protection: the upstream is never asked
    errors: list[UpstreamError] = []
    for member in members:
        if member.type != "proxy":
            continue
        try:
            current = await proxy.pages.current(member, name, fresh=fresh)
        except NotFound:
            continue
        except UpstreamError as exc:
            errors.append(exc)
            continue
        result.proxy = (member, current)
        break
    if not result.hosted and result.proxy is None:
        if errors:
            raise errors[0]
        raise NotFound(f"Project '{name}' does not exist in '{group.path}'.")
    return result


async def group_page(
    ctx: RequestContext, proxy: ProxyService, group: RepositoryView, name: str, found: Resolution
) -> ProjectPage:
    """The group's page of `name`: hosted files (member order), then allowed upstream files,
    every URL pointing through the group."""
    base = ctx.base_url
    files: list[SimpleFile] = []
    versions: list[str] = []
    seen: set[str] = set()
    status: str | None = None
    reason: str | None = None
    for member, _serial in found.hosted:
        ref = await find_project(ctx.session, member.id, name)
        if ref is None:
            continue
        page = await project_page(
            ctx.session, base=base, storage=group.storage, repo=group.name, project=ref
        )
        if status is None and page.status is not None:
            status, reason = page.status, page.status_reason
        versions.extend(page.versions)
        for f in page.files:
            if f.filename not in seen:
                seen.add(f.filename)
                files.append(f)
    if found.proxy is not None:
        member, current = found.proxy
        decoded = await proxy.pages.decoded(member, name, current.version)
        page = linked_page(decoded, base=base, storage=group.storage, repo=group.name)
        if not found.hosted:
            status, reason = page.status, page.status_reason
        versions.extend(page.versions)
        for f in page.files:
            if f.filename not in seen:
                seen.add(f.filename)
                files.append(f)
    return ProjectPage(
        name=name, files=files, versions=versions, status=status, status_reason=reason
    )


async def group_index(
    ctx: RequestContext, proxy: ProxyService, group: RepositoryView
) -> ProjectList:
    """The union of the hosted members' projects and the projects cached from proxy members
    (the upstream's own root is never fetched)."""
    names: dict[str, str] = {}
    for member in await readable_members(ctx, group):
        if member.type == "hosted":
            for display, normalized in (await project_list(ctx.session, member.id)).projects:
                names.setdefault(normalized, display)
        elif member.type == "proxy":
            for normalized in await proxy.pages.cached_projects(member):
                names.setdefault(normalized, normalized)
    return ProjectList(projects=tuple((names[n], n) for n in sorted(names)))


async def proxy_index(proxy: ProxyService, repo: RepositoryView) -> ProjectList:
    """The projects a proxy repository holds pages for."""
    return ProjectList(projects=tuple((n, n) for n in await proxy.pages.cached_projects(repo)))


# -- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostedFile:
    """A hosted member's stored file (or its `.metadata`)."""

    blob_key: str
    size: int
    sha256: str


def same_version(given: str, expected: str) -> bool:
    """True when the version path segment names `expected` (any PEP 440 spelling)."""
    if given == expected:
        return True
    try:
        return canonicalize_version(Version(given)) == canonicalize_version(Version(expected))
    except InvalidVersion:
        return False


async def hosted_file(
    session: AsyncSession, member: RepositoryView, name: str, version: str, filename: str
) -> HostedFile | None:
    """The live file `filename` of project `name` in hosted `member`, or None."""
    metadata = filename.endswith(".metadata")
    real_name = filename.removesuffix(".metadata") if metadata else filename
    row = (
        await session.exec(
            select(File, Release.version, Project.name)
            .join(Release, col(Release.id) == col(File.release_id))
            .join(Project, col(Project.id) == col(File.project_id))
            .where(
                File.repository_id == member.id,
                File.filename == real_name,
                col(File.deleted_at).is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    f, release_version, project = row
    if project != name or not same_version(version, release_version):
        return None
    if metadata:
        if f.metadata_blob_key is None or f.metadata_sha256 is None or f.metadata_size is None:
            return None
        return HostedFile(f.metadata_blob_key, f.metadata_size, f.metadata_sha256)
    return HostedFile(f.blob_key, f.size, f.sha256)


@dataclass(frozen=True)
class UpstreamFile:
    """What it takes to serve a proxied file: where it comes from and what it must hash to."""

    repo: RepositoryView
    url: str
    sha256: str | None
    size: int | None
    source: int


async def proxy_file(
    proxy: ProxyService, repo: RepositoryView, name: str, version: str, filename: str
) -> UpstreamFile:
    """The upstream file (or `.metadata`) behind `/<name>/<version>/<filename>` in proxy
    `repo`; NotFound unless its page lists it under exactly that path."""
    metadata = filename.endswith(".metadata")
    real_name = filename.removesuffix(".metadata") if metadata else filename
    listed, source = await proxy.pages.find_file(repo, name, real_name)
    if not same_version(version, version_of(real_name)):
        raise NotFound(f"File '{filename}' does not exist in '{repo.path}'.")
    source = source if 0 <= source < len(repo.upstreams) else 0
    url = listed.upstream_url or listed.url
    if metadata:
        if not listed.has_core_metadata:
            raise NotFound(f"File '{filename}' does not exist in '{repo.path}'.")
        return UpstreamFile(repo, url + ".metadata", listed.core_metadata_sha256, None, source)
    return UpstreamFile(repo, url, listed.sha256, listed.size, source)
