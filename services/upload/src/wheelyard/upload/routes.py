"""HTTP routes of the upload service: the legacy upload API, raw PUT, yank and delete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, field_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared import routes
from wheelyard.shared.auth.access import missing
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.domain.repositories import RepositoryView, split_path
from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.routes import file_path
from wheelyard.shared.web.deps import (
    BaseUrlDep,
    DirectoryDep,
    PagesDep,
    PrincipalDep,
    SessionDep,
    runtime_of,
)
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.shared.web.runtime import Runtime
from wheelyard.upload import releases, service
from wheelyard.upload.incoming import FormUpload, RawUpload

router = APIRouter()


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _publish(
    request: Request,
    storage: str,
    repo: str,
    incoming: service.Incoming,
    session: AsyncSession,
    pages: PageCache,
    runtime: Runtime,
    principal: Principal,
) -> service.Published:
    return await service.publish(
        session,
        pages,
        backends=runtime.backends,
        directory=runtime.directory,
        principal=principal,
        storage=storage,
        repo=repo,
        incoming=incoming,
        source_ip=_client_ip(request),
    )


@router.post(routes.LEGACY_UPLOAD.template, summary="Legacy upload API (twine, uv, poetry, pdm)")
async def legacy_upload(
    request: Request,
    storage: str,
    repo: str,
    session: SessionDep,
    pages: PagesDep,
    principal: PrincipalDep,
) -> Response:
    """Upload one distribution file as a multipart form (`:action=file_upload`, `content`)."""
    incoming = FormUpload(request)
    await _publish(request, storage, repo, incoming, session, pages, runtime_of(request), principal)
    return PlainTextResponse("")


for _template in routes.LEGACY_UPLOAD.templates[1:]:
    router.add_api_route(_template, legacy_upload, methods=["POST"], include_in_schema=False)


@router.put(routes.RAW_UPLOAD.template, summary="Raw upload of one file")
@router.post(routes.RAW_UPLOAD.template, include_in_schema=False)
async def raw_upload(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    version: str,
    filename: str,
    session: SessionDep,
    pages: PagesDep,
    principal: PrincipalDep,
    base: BaseUrlDep,
) -> JSONResponse:
    """Upload the request body as `filename`; the path's project and version must match it."""
    incoming = RawUpload(request, project, version, filename)
    published = await _publish(
        request, storage, repo, incoming, session, pages, runtime_of(request), principal
    )
    url = base + file_path(
        *split_path(published.repository),
        published.project,
        published.version,
        published.filename,
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


@dataclass(frozen=True)
class ReleaseRequest:
    """Everything a release-changing route passes to the service: where, who, from where."""

    session: AsyncSession
    pages: PageCache
    repo: RepositoryView
    principal: Principal
    project: str
    version: str
    source_ip: str | None

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of `releases.set_yanked` / `releases.delete_files`."""
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
    target = await directory.get(storage, repo)
    if target is None:
        raise missing(principal, f"{storage}/{repo}")
    return ReleaseRequest(session, pages, target, principal, project, version, _client_ip(request))


ReleaseDep = Annotated[ReleaseRequest, Depends(release_request)]


@router.post(routes.YANK.template, summary="Yank a release (PEP 592)")
async def yank(
    release: ReleaseDep, payload: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, object]:
    """Mark every file of the release yanked, with an optional `{"reason": "..."}`."""
    reason = (payload or {}).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("'reason' must be a string.")
    if reason is not None and len(reason) > 1000:
        raise InvalidInput("'reason' is longer than 1000 characters.")
    return await releases.set_yanked(
        release.session, release.pages, **release.arguments(), yanked=True, reason=reason
    )


@router.post(routes.UNYANK.template, summary="Un-yank a release")
async def unyank(release: ReleaseDep) -> dict[str, object]:
    """Clear the release's yank flag and reason."""
    return await releases.set_yanked(
        release.session, release.pages, **release.arguments(), yanked=False, reason=None
    )


@router.delete(routes.DELETE_RELEASE.template, summary="Delete a release's files (admin)")
async def delete_release(release: ReleaseDep) -> dict[str, object]:
    """Delete the release's files; their filenames stay reserved forever."""
    deleted = await releases.delete_files(
        release.session, release.pages, **release.arguments(), filename=None
    )
    return {"deleted": deleted}


@router.delete(routes.DELETE_FILE.template, summary="Delete one file (admin)")
async def delete_file(release: ReleaseDep, filename: str) -> dict[str, object]:
    """Delete one file; its filename stays reserved forever."""
    deleted = await releases.delete_files(
        release.session, release.pages, **release.arguments(), filename=filename
    )
    return {"deleted": deleted}


class ProjectStatusIn(BaseModel):
    """A PEP 792 status and an optional reason shown with it."""

    status: Literal["active", "archived", "quarantined", "deprecated"]
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # Shown in a meta tag and by installers: one line of text, no control characters.
        return " ".join(value.split()) or None if value is not None else None


@router.put(routes.PROJECT_STATUS.template, summary="Set a project's status (PEP 792, admin)")
async def project_status(
    request: Request,
    storage: str,
    repo: str,
    project: str,
    payload: ProjectStatusIn,
    session: SessionDep,
    directory: DirectoryDep,
    pages: PagesDep,
    principal: PrincipalDep,
) -> dict[str, object]:
    """Set a hosted project's status (`active`, `archived`, `quarantined`, `deprecated`) with an
    optional `reason`: `archived` and `quarantined` refuse uploads, `quarantined` also lists no
    files and refuses downloads."""
    target = await directory.get(storage, repo)
    if target is None:
        raise missing(principal, f"{storage}/{repo}")
    return await releases.set_status(
        session,
        pages,
        repo=target,
        principal=principal,
        project=project,
        status=payload.status,
        reason=payload.reason,
        source_ip=_client_ip(request),
    )
