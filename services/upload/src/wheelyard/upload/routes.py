"""HTTP routes of the upload service: the legacy upload API, raw PUT, yank and delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import ClientDisconnect

from wheelyard.shared.auth.access import require_write
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.deps import (
    BackendsDep,
    BaseUrlDep,
    DirectoryDep,
    PagesDep,
    PrincipalDep,
    SessionDep,
)
from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.shared.packaging.form import parse_upload_form_fields
from wheelyard.shared.pagecache import PageCache
from wheelyard.shared.urls import file_path
from wheelyard.upload import service
from wheelyard.upload.multipart import parse_upload_form
from wheelyard.upload.spool import Spool

router = APIRouter()
REPO = "/repositories/{storage}/{repo}"
FORM_OVERHEAD = 32 * 1024 * 1024  # form fields around the file, at most


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect as exc:
        raise InvalidInput("The upload was interrupted before the whole body arrived.") from exc


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"File too large. Limit is {limit} bytes.")


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _publish(
    request: Request,
    backends: BackendsDep,
    session: SessionDep,
    pages: PagesDep,
    repo: service.RepositoryView,
    principal: PrincipalDep,
    spool: Spool,
    filename: str,
    **validation: Any,
) -> service.Published:
    settings = backends.settings
    validated = await anyio.to_thread.run_sync(
        lambda: service.validate_upload(
            filename=filename, spool=spool, settings=settings, **validation
        )
    )
    file_blob, metadata_blob = await service.store_blobs(backends.blobs, spool, validated)
    return await service.record_upload(
        session,
        pages,
        repo=repo,
        principal=principal,
        spool=spool,
        validated=validated,
        file_blob=file_blob,
        metadata_blob=metadata_blob,
        form=validation.get("form"),
        source_ip=_client_ip(request),
    )


@router.post(REPO, include_in_schema=False)
@router.post(REPO + "/", summary="Legacy upload API (twine, uv publish, poetry, pdm)")
@router.post(REPO + "/legacy", include_in_schema=False)
@router.post(REPO + "/legacy/", include_in_schema=False)
@router.post(REPO + "/simple", include_in_schema=False)
@router.post(REPO + "/simple/", include_in_schema=False)
async def legacy_upload(
    request: Request,
    storage: str,
    repo: str,
    backends: BackendsDep,
    session: SessionDep,
    directory: DirectoryDep,
    pages: PagesDep,
    principal: PrincipalDep,
) -> Response:
    """Upload one distribution file as a multipart form (`:action=file_upload`, `content`)."""
    target = await service.upload_target(session, directory, storage, repo)
    require_write(principal, target)  # before reading a byte of the body
    settings = backends.settings
    _check_declared_length(request, settings.max_upload_size + FORM_OVERHEAD)
    spool_dir = service.spool_dir(settings)
    body = await parse_upload_form(
        _body(request),
        request.headers.get("content-type", ""),
        lambda: Spool(spool_dir, settings.max_upload_size),
    )
    assert body.spool is not None
    try:
        fields = dict(body.fields)
        # PyPI also accepts the action in the query string.
        if ":action" not in fields and ":action" in request.query_params:
            fields[":action"] = [request.query_params[":action"]]
        form = parse_upload_form_fields(fields)
        if body.content_type and body.content_type.lower().startswith("image/"):
            raise InvalidInput("Invalid distribution file: the content part is an image.")
        await _publish(
            request,
            backends,
            session,
            pages,
            target,
            principal,
            body.spool,
            body.filename or "",
            form=form,
        )
    finally:
        body.spool.discard()
    return PlainTextResponse("")


@router.put(REPO + "/{project}/{version}/{filename}", summary="Raw upload of one file")
@router.post(REPO + "/{project}/{version}/{filename}", include_in_schema=False)
async def raw_upload(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str,
    filename: str,
    backends: BackendsDep,
    session: SessionDep,
    directory: DirectoryDep,
    pages: PagesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
) -> JSONResponse:
    """Upload the request body as `filename`; the path's project and version must match it."""
    target = await service.upload_target(session, directory, storage, repo)
    require_write(principal, target)
    settings = backends.settings
    _check_declared_length(request, settings.max_upload_size)
    spool = Spool(service.spool_dir(settings), settings.max_upload_size)
    try:
        async for chunk in _body(request):
            await spool.write(chunk)
        await spool.finish()
        if spool.size == 0:
            raise InvalidInput("The request body is empty; send the file's bytes.")
        published = await _publish(
            request,
            backends,
            session,
            pages,
            target,
            principal,
            spool,
            filename,
            path_project=project,
            path_version=version,
        )
    finally:
        spool.discard()
    url = base + file_path(
        target.storage, target.name, published.project, published.version, published.filename
    )
    return JSONResponse(
        {
            "repository": published.repository,
            "project": published.project,
            "version": published.version,
            "filename": published.filename,
            "sha256": published.sha256,
            "size": published.size,
            "url": url,
            "created": published.created,
        },
        status_code=201 if published.created else 200,
    )


API_RELEASE = "/api/v1/repositories/{storage}/{repo}/projects/{project}/versions/{version}"


@dataclass(frozen=True)
class ReleaseRequest:
    """Everything a release-changing route passes to the service: where, who, from where."""

    session: AsyncSession
    pages: PageCache
    repo: service.RepositoryView
    principal: Principal
    project: str
    version: str
    source_ip: str | None

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of `service.set_yanked` / `service.delete_files`."""
        return {
            "repo": self.repo,
            "principal": self.principal,
            "project": self.project,
            "version": self.version,
            "source_ip": self.source_ip,
        }


async def release_request(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str,
    session: SessionDep,
    directory: DirectoryDep,
    pages: PagesDep,
    principal: PrincipalDep,
) -> ReleaseRequest:
    """The release named by the path, with the caller and the stores."""
    target = await directory.require(storage, repo)
    return ReleaseRequest(session, pages, target, principal, project, version, _client_ip(request))


ReleaseDep = Annotated[ReleaseRequest, Depends(release_request)]


@router.post(API_RELEASE + "/yank", summary="Yank a release (PEP 592)")
async def yank(
    release: ReleaseDep, payload: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, object]:
    """Mark every file of the release yanked, with an optional `{"reason": "..."}`."""
    reason = (payload or {}).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("'reason' must be a string.")
    if reason is not None and len(reason) > 1000:
        raise InvalidInput("'reason' is longer than 1000 characters.")
    return await service.set_yanked(
        release.session, release.pages, **release.arguments(), yanked=True, reason=reason
    )


@router.post(API_RELEASE + "/unyank", summary="Un-yank a release")
async def unyank(release: ReleaseDep) -> dict[str, object]:
    """Clear the release's yank flag and reason."""
    return await service.set_yanked(
        release.session, release.pages, **release.arguments(), yanked=False, reason=None
    )


@router.delete(API_RELEASE, summary="Delete every file of a release (admin)")
async def delete_release(release: ReleaseDep) -> dict[str, object]:
    """Delete the release's files; their filenames stay reserved forever."""
    deleted = await service.delete_files(
        release.session, release.pages, **release.arguments(), filename=None
    )
    return {"deleted": deleted}


@router.delete(API_RELEASE + "/files/{filename}", summary="Delete one file (admin)")
async def delete_file(release: ReleaseDep, filename: str) -> dict[str, object]:
    """Delete one file; its filename stays reserved forever."""
    deleted = await service.delete_files(
        release.session, release.pages, **release.arguments(), filename=filename
    )
    return {"deleted": deleted}
