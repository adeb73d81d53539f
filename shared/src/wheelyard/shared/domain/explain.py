"""Why a repository serves (or not) each file of a project: the explain endpoint's answer.

It asks the same rules the pages and downloads ask (`domain.policy`, `domain.refusals`), on
what is stored: hosted files from the database, proxied files from the repository's stored
page (an upstream is never contacted from here; a project whose page is not stored yet says
so). A group is resolved as its pages are: a name held by a hosted member the caller may read
comes from the hosted members (the proxies too when the group's `allow_upstream` names it),
any other from the first proxy member with a stored page; each file is decided by its source's
rules and then the group's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from packaging.utils import canonicalize_name
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.models import File, Release
from wheelyard.shared.domain import proxied
from wheelyard.shared.domain.hosted import find_project, same_version
from wheelyard.shared.domain.policy import chain_of, iso
from wheelyard.shared.domain.refusals import file_decision
from wheelyard.shared.domain.repositories import RepositoryView

#: Looks a member up by (storage, name): None when missing or not readable by the caller.
MemberLookup = Callable[[str, str], Awaitable[RepositoryView | None]]


@dataclass(frozen=True)
class Candidate:
    """One file as stored, before the rules: where it is and what they decide on."""

    source: RepositoryView
    filename: str
    version: str
    upload_time: datetime | None
    first_seen: datetime | None
    status: str | None
    status_origin: str


async def _hosted(
    session: AsyncSession, member: RepositoryView, name: str, version: str | None
) -> tuple[list[Candidate], str | None] | None:
    ref = await find_project(session, member.id, name)
    if ref is None:
        return None
    rows = await session.exec(
        select(File.filename, File.upload_time, Release.version)
        .join(Release, col(Release.id) == col(File.release_id))
        .where(File.project_id == ref.id, col(File.deleted_at).is_(None))
        .order_by(col(File.upload_time), col(File.id))
    )
    found = [
        Candidate(member, filename, v, uploaded, None, ref.status, "")
        for filename, uploaded, v in rows.all()
        if version is None or same_version(version, v)
    ]
    return found, ref.status


async def _proxied(
    session: AsyncSession, member: RepositoryView, name: str, version: str | None
) -> tuple[list[Candidate], str | None] | None:
    content = await proxied.load_content(session, member.id, name)
    if content is None:
        return None
    status = content.row.head.get("status")
    status = status if isinstance(status, str) else None
    found = []
    for f, v in content.files_and_versions():
        if version is None or same_version(version, v):
            found.append(
                Candidate(member, f.filename, v, f.upload_time, f.first_seen, status, "upstream")
            )
    return found, status


async def explain(
    session: AsyncSession,
    view: RepositoryView,
    project: str,
    version: str | None,
    members: MemberLookup,
    now: datetime,
) -> dict[str, Any]:
    """File by file, whether `view` serves `project` (at `version`, or every version) and the
    rule that decides; `members` looks up a group's members as the caller may read them."""
    name = canonicalize_name(project)
    candidates: list[Candidate] = []
    status: str | None = None
    notes: list[str] = []
    group = view.policy if view.type == "group" else None
    sources: list[RepositoryView] = []
    if view.type == "group":
        readable = [m for m in [await members(s, r) for s, r in view.member_refs] if m]
        for member in readable:
            if member.type == "hosted":
                found = await _hosted(session, member, name, version)
                if found is not None:
                    sources.append(member)
                    candidates += found[0]
                    status = status or found[1]
        allow = name in {canonicalize_name(str(n)) for n in view.settings.get("allow_upstream", [])}
        if not sources or allow:
            for member in readable:
                if member.type != "proxy":
                    continue
                found = await _proxied(session, member, name, version)
                if found is not None:
                    sources.append(member)
                    candidates += found[0]
                    if not status:
                        status = found[1]
                    break
    elif view.type == "hosted":
        found = await _hosted(session, view, name, version)
        if found is not None:
            sources.append(view)
            candidates, status = found
    else:
        found = await _proxied(session, view, name, version)
        if found is not None:
            sources.append(view)
            candidates, status = found
    if not sources:
        where = "the repository" if view.type == "hosted" else "any stored page"
        notes.append(
            f"'{name}' is not in {where}: a proxied project is explained once its simple "
            "page has been asked for through this repository."
        )
    files = []
    for c in candidates:
        decision = file_decision(
            chain_of(c.source.policy, group),
            name=name,
            version=c.version,
            upload_time=c.upload_time or c.first_seen,
            status=c.status,
            now=now,
            origin=c.status_origin,
        )
        if decision.served:
            listed = "yes"
        elif decision.hidden:
            listed = "no"
        else:
            listed = "as yanked"
        files.append(
            {
                "filename": c.filename,
                "version": c.version,
                "source": c.source.path,
                "served": decision.served,
                "listed": listed,
                "rule": decision.rule or None,
                "reason": decision.reason() or None,
                "upload_time": iso(c.upload_time) if c.upload_time else None,
                "first_seen": iso(c.first_seen) if c.first_seen else None,
                "available_at": iso(decision.available_at) if decision.available_at else None,
            }
        )
    return {
        "repository": view.path,
        "project": name,
        "version": version,
        "project_status": status or "active",
        "sources": [s.path for s in sources],
        "files": files,
        "notes": notes,
    }
