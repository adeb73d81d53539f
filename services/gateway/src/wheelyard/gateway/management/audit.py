"""The audit log, newest first, for administrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wheelyard.gateway.management.guards import administrator
from wheelyard.gateway.management.schemas import AuditEventOut
from wheelyard.shared.domain import accounts
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=list[AuditEventOut])
async def audit_log(
    request: Request,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="page: events older than this id")
    ] = None,
    action: str | None = None,
    actor: str | None = None,
) -> JSONResponse:
    """Audit events, newest first (administrators only)."""
    administrator(request)
    events = await accounts.audit_events(
        session, limit=limit, before_id=before, action=action, actor=actor
    )
    return JSONResponse(
        [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "source_ip": e.source_ip,
                "detail": e.detail,
            }
            for e in events
        ],
        headers={"Cache-Control": "private, no-store"},
    )
