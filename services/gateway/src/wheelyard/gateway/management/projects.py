"""Project status (PEP 792) of hosted projects, set by the repository's admins.

`archived` and `quarantined` projects refuse new uploads; a `quarantined` project lists no
files and its downloads are refused; `deprecated` and `archived` are shown to installers and
stay installable. The status is served in the simple pages (`project-status` in JSON, the
`pypi:project-status` meta tags in HTML) from the next render on: the project's serial is
bumped in the same transaction.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field, field_validator
from sqlmodel import col, select, update

from wheelyard.gateway.management.guards import audit, signed_in
from wheelyard.gateway.management.repositories import visible_repository
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import Project
from wheelyard.shared.domain.hosted import project_scope
from wheelyard.shared.errors import InvalidInput, NotFound
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["projects"])


class ProjectStatusIn(BaseModel):
    """A PEP 792 status and an optional reason shown with it."""

    status: Literal["active", "archived", "quarantined", "deprecated"]
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("reason")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("the reason must be printable text")
        return value or None


class ProjectStatusOut(BaseModel):
    """A hosted project's status as stored."""

    repository: str
    project: str
    status: Literal["active", "archived", "quarantined", "deprecated"]
    reason: str | None


@router.put(
    "/repositories/{storage}/{name}/projects/{project}/status", response_model=ProjectStatusOut
)
async def set_project_status(
    request: Request,
    storage: str,
    name: str,
    project: str,
    payload: ProjectStatusIn,
    session: SessionDep,
) -> dict[str, Any]:
    """Set a hosted project's PEP 792 status (the repository's admins): `archived` and
    `quarantined` refuse uploads, `quarantined` also lists no files and refuses downloads."""
    principal = signed_in(request)
    await begin_write(session)
    view = await visible_repository(request, session, storage, name, "admin")
    if view.type != "hosted":
        raise InvalidInput(
            "Project status is set on hosted repositories; proxy repositories pass their "
            "upstream's status through."
        )
    normalized = canonicalize_name(project)
    row = (
        await session.exec(
            select(Project.id, Project.status).where(
                Project.repository_id == view.id, Project.name == normalized
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"Project '{normalized}' does not exist in '{view.path}'.")
    project_id, before = row
    await session.exec(
        update(Project)
        .where(col(Project.id) == project_id)
        .values(
            status=payload.status,
            status_reason=payload.reason,
            serial=Project.serial + 1,
        )
    )
    serial = (await session.exec(select(Project.serial).where(Project.id == project_id))).one()
    audit(
        request,
        session,
        principal.username,
        "project.status",
        target=f"{view.path}/{normalized}",
        detail={"from": before, "to": payload.status, "reason": payload.reason},
    )
    await session.commit()
    await request.app.state.runtime.pages.changed(project_scope(view.id, normalized), serial)
    return {
        "repository": view.path,
        "project": normalized,
        "status": payload.status,
        "reason": payload.reason,
    }
