"""An upload's body as it arrives over HTTP: the legacy multipart form, or a raw PUT body.

Each kind is an `Incoming` for `service.publish`, which asks for the bytes only after the
caller's right to write has been checked, so nothing is read from someone who may not upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import ClientDisconnect, Request

from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.shared.packaging.form import parse_upload_form_fields
from wheelyard.upload.multipart import parse_upload_form
from wheelyard.upload.service import Received
from wheelyard.upload.spool import Spool

#: Form fields around the file, at most (a long README, classifiers...).
FORM_OVERHEAD = 32 * 1024 * 1024


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


class FormUpload:
    """The legacy upload API's body (`:action=file_upload`, the file in `content`)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    async def receive(self, spool_dir: Path, limit: int) -> Received:
        """Spool the file part and parse the form fields."""
        request = self.request
        _check_declared_length(request, limit + FORM_OVERHEAD)
        body = await parse_upload_form(
            _body(request),
            request.headers.get("content-type", ""),
            lambda: Spool(spool_dir, limit),
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
        except BaseException:
            body.spool.discard()
            raise
        return Received(spool=body.spool, filename=body.filename or "", form=form)


class RawUpload:
    """A raw PUT (or POST) of one file to `<project>/<version>/<filename>`."""

    def __init__(self, request: Request, project: str, version: str, filename: str) -> None:
        self.request = request
        self.project = project
        self.version = version
        self.filename = filename

    async def receive(self, spool_dir: Path, limit: int) -> Received:
        """Spool the body; the path's project and version are checked against the file."""
        _check_declared_length(self.request, limit)
        spool = Spool(spool_dir, limit)
        try:
            async for chunk in _body(self.request):
                await spool.write(chunk)
            await spool.finish()
            if spool.size == 0:
                raise InvalidInput("The request body is empty; send the file's bytes.")
        except BaseException:
            spool.discard()
            raise
        return Received(
            spool=spool,
            filename=self.filename,
            path_project=self.project,
            path_version=self.version,
        )
