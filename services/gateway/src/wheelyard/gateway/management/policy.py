"""The supply-chain rules explained: `GET .../policy/explain?project=P&version=V` says, file by
file, whether the repository serves it and which rule decides (`wheelyard.shared.domain.explain`).
Anyone who may read the repository may ask; a group's members they may not read are skipped,
as its pages skip them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wheelyard.gateway.management.repositories import policy_json, visible_repository
from wheelyard.shared.auth.access import can_read
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.domain.explain import explain
from wheelyard.shared.domain.repositories import RepositoryView, find_repository, view_of
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["supply chain"])


@router.get("/repositories/{storage}/{name}/policy/explain")
async def explain_policy(
    request: Request,
    storage: str,
    name: str,
    session: SessionDep,
    project: Annotated[str, Query(min_length=1, max_length=255, description="project name")],
    version: Annotated[
        str | None, Query(min_length=1, max_length=255, description="one version (else all)")
    ] = None,
) -> JSONResponse:
    """Whether each file of `project` (at `version`) is served and the rule that decides:
    `served`, `listed` (yes, as yanked, no), `rule`, `reason`, `available_at` for a file the
    minimum release age withholds, the upstream's `upload_time` and when this repository
    `first_seen` it."""
    view = await visible_repository(request, session, storage, name, "read")
    principal: Principal = request.state.principal

    async def member(member_storage: str, member_name: str) -> RepositoryView | None:
        row = await find_repository(session, member_storage, member_name)
        if row is None:
            return None
        found = await view_of(session, row, member_storage)
        return found if can_read(principal, found, group=view) else None

    body = await explain(session, view, project, version, member, datetime.now(UTC))
    body["rules"] = policy_json(view)
    return JSONResponse(body, headers={"Cache-Control": "private, no-store"})
