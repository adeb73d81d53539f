"""Storage: the report, for administrators (bytes and files per repository, cached and pinned
bytes of proxy repositories, what the next sweep would remove), and the pins of a proxy
repository's files, for its admins (retention never removes a pinned file)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from wheelyard.gateway.management.guards import administrator, audit, signed_in
from wheelyard.gateway.management.repositories import visible_repository
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import ProxyPin
from wheelyard.shared.domain import retention
from wheelyard.shared.domain.maintenance import storage_report
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["storage"])
_PRIVATE = {"Cache-Control": "private, no-store"}


@router.get("/storage")
async def storage(
    request: Request,
    blobs: Annotated[
        bool, Query(description="also list the blob store for unreferenced blobs")
    ] = True,
) -> JSONResponse:
    """Bytes and files per repository (hosted: live files; proxy: cached files, of which
    pinned, with the retention limits and what the next sweep would remove) and, with
    `blobs`, the blob store's totals and its unreferenced blobs (administrators only)."""
    administrator(request)
    backends = request.app.state.runtime.backends
    grace = timedelta(seconds=backends.settings.gc_grace)
    report: dict[str, Any] = await storage_report(
        backends.sessions, backends.blobs, grace=grace, blobs_too=blobs
    )
    return JSONResponse(report, headers=_PRIVATE)


class Pins(BaseModel):
    """Files of a proxy repository to pin, by the names in their download URLs (a pin keeps
    the file's PEP 658 `.metadata` too)."""

    filenames: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        min_length=1, max_length=10_000
    )


async def _proxy(request: Request, session: SessionDep, storage: str, name: str) -> RepositoryView:
    view = await visible_repository(request, session, storage, name, "admin")
    if view.type != "proxy":
        raise InvalidInput(f"'{view.path}' is a {view.type} repository; only proxies have pins.")
    return view


@router.get("/repositories/{storage}/{name}/pins")
async def list_pins(request: Request, storage: str, name: str, session: SessionDep) -> JSONResponse:
    """The pinned files of a proxy repository (its admins)."""
    signed_in(request)
    view = await _proxy(request, session, storage, name)
    rows = (
        await session.exec(
            select(ProxyPin)
            .where(ProxyPin.repository_id == view.id)
            .order_by(col(ProxyPin.filename))
        )
    ).all()
    return JSONResponse(
        [
            {"filename": p.filename, "reason": p.reason, "pinned_at": p.pinned_at.isoformat()}
            for p in rows
        ],
        headers=_PRIVATE,
    )


@router.post("/repositories/{storage}/{name}/pins")
async def pin(
    request: Request, storage: str, name: str, payload: Pins, session: SessionDep
) -> JSONResponse:
    """Pin files of a proxy repository (its admins): retention never removes them, cached now
    or later, until unpinned. Answers how many were newly pinned."""
    principal = signed_in(request)
    await begin_write(session)
    view = await _proxy(request, session, storage, name)
    count = await retention.pin_proxy_files(session, view.id, payload.filenames, reason="admin")
    audit(
        request,
        session,
        principal.username,
        "repository.pin",
        target=view.path,
        detail={"files": len(payload.filenames), "pinned": count},
    )
    await session.commit()
    return JSONResponse({"pinned": count}, headers=_PRIVATE)


@router.delete("/repositories/{storage}/{name}/pins/{filename}", status_code=204)
async def unpin(
    request: Request, storage: str, name: str, filename: str, session: SessionDep
) -> Response:
    """Unpin one file of a proxy repository (its admins); retention may then remove it."""
    principal = signed_in(request)
    await begin_write(session)
    view = await _proxy(request, session, storage, name)
    removed = await retention.unpin_proxy_files(session, view.id, [filename])
    audit(
        request,
        session,
        principal.username,
        "repository.unpin",
        target=view.path,
        detail={"filename": filename[:300], "removed": removed},
    )
    await session.commit()
    return Response(status_code=204)
