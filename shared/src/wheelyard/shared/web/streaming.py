"""Serving blobs over HTTP: full bodies, single byte ranges, HEAD, and early disconnects.

File responses never carry a Content-Encoding (pip downloads with `identity` and a gzip
transfer encoding on a .tar.gz would corrupt it), always `Accept-Ranges: bytes` and an exact
Content-Length, so uv can read a wheel's central directory with Range requests.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import cast

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from wheelyard.shared.errors import NotFound
from wheelyard.shared.storage import BlobNotFound, BlobStore
from wheelyard.shared.web.conditional import if_none_match_matches

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class BytesMissing(NotFound):
    """A file's record says it is stored, but its blob is gone (a 404 unless the caller can
    get the bytes elsewhere)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end_inclusive) for a satisfiable single range; None to send everything;
    the string "unsatisfiable" when the range lies outside the file."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: RFC 9110 lets us ignore the header
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def _blob_response(
    blobs: BlobStore,
    key: str,
    *,
    size: int,
    method: str,
    range_header: str | None = None,
    media_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    base = {"Accept-Ranges": "bytes", **(headers or {})}
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    status = 200
    offset, length = 0, size
    if isinstance(wanted, tuple):
        start, end = wanted
        offset, length = start, end - start + 1
        status = 206
        base["Content-Range"] = f"bytes {start}-{end}/{size}"
    base["Content-Length"] = str(length)
    if method == "HEAD":
        return Response(status_code=status, headers=base, media_type=media_type)
    return StreamingResponse(
        blobs.open(key, offset=offset, length=length),
        status_code=status,
        headers=base,
        media_type=media_type,
    )


async def serve_blob(
    blobs: BlobStore,
    key: str,
    *,
    size: int,
    method: str,
    range_header: str | None = None,
    media_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    """A response streaming blob `key` (of `size` bytes), honouring a single Range.

    Reads the first chunk before answering, so a storage outage or a missing blob becomes a
    503/404 instead of a 200 whose body breaks off."""
    response = _blob_response(
        blobs,
        key,
        size=size,
        method=method,
        range_header=range_header,
        media_type=media_type,
        headers=headers,
    )
    if not isinstance(response, StreamingResponse):
        return response
    # Starlette types the body as any iterable of str/bytes; ours is the blob's bytes iterator.
    iterator = cast(AsyncIterator[bytes], response.body_iterator)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        first = b""
    except BlobNotFound as exc:
        raise BytesMissing("The file's bytes are missing from storage.") from exc
    response.body_iterator = _prepended(first, iterator)
    return response


async def _prepended(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


#: How long a presigned download URL stays valid.
PRESIGNED_SECONDS = 300


async def stored_file_response(
    request: Request,
    blobs: BlobStore,
    *,
    key: str,
    size: int,
    sha256: str,
    cache_control: str,
    redirect: bool,
) -> Response:
    """The response for a stored distribution file (or `.metadata`) whose bytes are blob `key`:
    304 when `If-None-Match` names its sha256 ETag; with `redirect` (WHEELYARD_BLOB_REDIRECT)
    a GET gets a presigned URL of the object store when it has one; otherwise the bytes,
    streamed, with Range support."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if if_none_match_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if request.method == "GET" and redirect:
        # Bytes straight from object storage: the presigned URL needs no credentials, which
        # clients drop on a cross-host redirect anyway (RFC 9110 §15.4 lets them; pip's and
        # uv's HTTP clients do).
        url = await blobs.url_for(key, expires_seconds=PRESIGNED_SECONDS)
        if url:
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    return await serve_blob(
        blobs,
        key,
        size=size,
        method=request.method,
        range_header=request.headers.get("range"),
        headers=headers,
    )
