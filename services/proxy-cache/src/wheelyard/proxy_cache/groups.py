"""Group repositories: where a project comes from, among ordered hosted and proxy members.

Dependency confusion (PEP 708's motivation; Birsan, 2021): a project name that exists in any
hosted member the caller may read is served from the hosted members only (every hosted member
that has it, in member order); the proxies are not even asked, unless the group's
`settings["allow_upstream"]` lists the name (then the first proxy that knows it is merged in,
hosted files winning on equal filenames). Any other name comes from the first proxy member that
knows it. Members the caller may not read are skipped, so a private proxy member is never
contacted on behalf of someone who may not read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from anyio import to_thread
from packaging.utils import canonicalize_name

from wheelyard.proxy_cache.links import linked_page
from wheelyard.proxy_cache.pages import CurrentPage, ProxyPages
from wheelyard.shared.auth.access import can_read
from wheelyard.shared.domain.hosted import (
    find_project,
    list_scope,
    project_list,
    project_page,
    project_scope,
    repository_serial,
)
from wheelyard.shared.domain.policy import RepositoryPolicy, chain_of, screen_page
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.packaging.simple.model import ProjectList, ProjectPage, SimpleFile
from wheelyard.shared.web.context import RequestContext


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


def policies(group: RepositoryView, found: Resolution) -> tuple[RepositoryPolicy, ...]:
    """Every supply-chain policy the group's page of a project depends on: the group's and
    its sources' (empty when none has rules)."""
    members = [m.policy for m, _ in found.hosted]
    if found.proxy is not None:
        members.append(found.proxy[0].policy)
    return chain_of(group.policy, *members)


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
    for storage, repo in group.member_refs:
        view = await ctx.repository(storage, repo)
        # A token that opens the group opens its members as far as the user may read them.
        if view is not None and can_read(principal, view, group=group):
            out.append(view)
    return out


async def hosted_serial(ctx: RequestContext, member: RepositoryView, name: str) -> int:
    """The serial of `name` in hosted `member`; 0 when it has no such project.

    Goes through the page cache's serial hints, so the shadowing check costs a cache read;
    absence is remembered as 0, which the upload service's next serial (always >= 1)
    overrides at once (read-after-write: a new internal project shadows immediately).
    """

    async def load() -> int:
        ref = await find_project(ctx.session, member.id, name)
        return ref.serial if ref is not None else 0

    return await ctx.pages.serial(project_scope(member.id, name), load) or 0


async def resolve(
    ctx: RequestContext, pages: ProxyPages, group: RepositoryView, name: str, *, fresh: bool = True
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
            current = await pages.current(member, name, fresh=fresh)
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
    ctx: RequestContext, pages: ProxyPages, group: RepositoryView, name: str, found: Resolution
) -> tuple[ProjectPage, int]:
    """The group's page of `name`: hosted files (member order), then allowed upstream files,
    every URL pointing through the group (the upstream ones read lazily, as it renders);
    and about how many files it lists. Each source's files are screened by its own rules and
    then the group's (`domain.policy`)."""
    base = ctx.base_url
    now = datetime.now(UTC)
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
        chain = chain_of(member.policy, group.policy)
        if chain:
            page = screen_page(_constant(page), chain, now)
        if status is None and page.status is not None:
            status, reason = page.status, page.status_reason
        versions.extend(page.versions)
        for f in page.files:
            if f.filename not in seen:
                seen.add(f.filename)
                files.append(f)
    upstream: Iterator[SimpleFile] = iter(())
    count = len(files)
    if found.proxy is not None:
        member, current = found.proxy
        content = await pages.content(member, name, current)
        chain = chain_of(member.policy, group.policy)

        def build() -> ProjectPage:
            return linked_page(content, base=base, storage=group.storage, repo=group.name)

        # Screening reads the stored page once more: off the event loop, as rendering is.
        page = await to_thread.run_sync(screen_page, build, chain, now) if chain else build()
        if not found.hosted:
            status, reason = page.status, page.status_reason
        versions.extend(page.versions)
        upstream = (f for f in page.files if f.filename not in seen)
        count += content.count

    def every_file() -> Iterator[SimpleFile]:
        yield from files
        yield from upstream

    page = ProjectPage(
        name=name, files=every_file(), versions=versions, status=status, status_reason=reason
    )
    return page, count


def _constant(page: ProjectPage) -> Callable[[], ProjectPage]:
    return lambda: page


async def index_key(ctx: RequestContext, pages: ProxyPages, members: list[RepositoryView]) -> int:
    """A number that changes whenever the union of `members`' project lists may have (the
    members themselves, a hosted member's list serial, a proxy member's `list_serial`)."""
    parts = []
    for member in members:
        if member.type == "hosted":

            async def load(member: RepositoryView = member) -> int:
                return await repository_serial(ctx.session, member.id)

            serial = await ctx.pages.serial(list_scope(member.id), load)
            parts.append(f"h{member.id}:{serial}")
        elif member.type == "proxy":
            parts.append(f"p{member.id}:{await pages.list_serial(member)}")
    digest = hashlib.blake2s("|".join(parts).encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


async def group_index(
    ctx: RequestContext, pages: ProxyPages, members: list[RepositoryView]
) -> ProjectList:
    """The union of the hosted `members`' projects and the projects cached from proxy
    members (the upstream's own root is never fetched)."""
    names: dict[str, str] = {}
    for member in members:
        if member.type == "hosted":
            for display, normalized in (await project_list(ctx.session, member.id)).projects:
                names.setdefault(normalized, display)
        elif member.type == "proxy":
            for normalized in await pages.cached_projects(member):
                names.setdefault(normalized, normalized)
    return ProjectList(projects=tuple((names[n], n) for n in sorted(names)))
