"""The storage report, for administrators: bytes and files per repository, cached and pinned
bytes of proxy repositories, and what the next sweep would remove."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wheelyard.gateway.management.guards import administrator
from wheelyard.shared.domain.maintenance import storage_report

router = APIRouter(tags=["storage"])


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
    return JSONResponse(report, headers={"Cache-Control": "private, no-store"})
