"""Serving blobs over HTTP: full bodies, single byte ranges, HEAD, and early disconnects.

File responses never carry a Content-Encoding (pip downloads with `identity` and a gzip
transfer encoding on a .tar.gz would corrupt it), always `Accept-Ranges: bytes` and an exact
Content-Length, so uv can read a wheel's central directory with Range requests.

How the bytes travel, cheapest first: a whole file kept on local disk goes by the ASGI
path-send extension when the server offers it (`sendfile(2)`, no copy through Python); a body
that fits in one read (most `.metadata` files, small wheels) is read at once and sent in one
message; anything else is streamed, one read in flight while the previous chunk is sent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from typing import cast

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from wheelyard.shared.errors import NotFound
from wheelyard.shared.storage import BlobNotFound, BlobStore
from wheelyard.shared.web import replay
from wheelyard.shared.web.conditional import if_none_match_matches
from wheelyard.shared.web.pagecache import PageCache

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: The ASGI path-send extension (https://asgi.readthedocs.io/en/latest/extensions.html).
PATHSEND = "http.response.pathsend"
#: Bodies above this size go by path-send when they can (smaller ones cost less read whole).
PATHSEND_ABOVE = 64 * 1024


class PathSendResponse(Response):
    """A response whose body is the file at `path`, sent by the server (ASGI path-send); the
    headers must carry the file's exact Content-Length."""

    def __init__(
        self, path: str, *, status_code: int, headers: dict[str, str], media_type: str
    ) -> None:
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": PATHSEND, "path": self.path})


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


async def serve_blob(
    blobs: BlobStore,
    key: str,
    *,
    size: int,
    method: str,
    range_header: str | None = None,
    media_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
    pathsend: bool = False,
) -> Response:
    """A response with blob `key` (of `size` bytes), honouring a single Range; with `pathsend`
    (the server offers the ASGI path-send extension) a whole local file is sent by the server.

    The blob is found (or its first chunk read) before answering, so a storage outage or a
    missing blob becomes a 503/404 (`BytesMissing`) instead of a 200 whose body breaks off."""
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
    try:
        if pathsend and status == 200 and length > PATHSEND_ABOVE:
            path = await blobs.local_path(key)
            if path is not None:
                return PathSendResponse(
                    path, status_code=status, headers=base, media_type=media_type
                )
        iterator = blobs.open(key, offset=offset, length=length)
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            first = b""
    except BlobNotFound as exc:
        raise BytesMissing("The file's bytes are missing from storage.") from exc
    if len(first) >= length:
        # The whole body in one read: one message, none of the streaming machinery.
        await cast(AsyncGenerator[bytes, None], iterator).aclose()
        return Response(first, status_code=status, headers=base, media_type=media_type)
    return StreamingResponse(
        _prepended(first, iterator), status_code=status, headers=base, media_type=media_type
    )


async def _prepended(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


#: Whole bodies up to this size may be kept in memory (`stored_file_response`).
MEMO_BYTES = 64 * 1024


async def read_whole(
    blobs: BlobStore, key: str, size: int, pages: PageCache | None = None
) -> bytes:
    """The `size` bytes of blob `key`, all at once; with `pages`, a body of at most
    `MEMO_BYTES` is kept in this process's memory (blobs never change), so the next whole
    download of it is answered from there. Call only for a blob a live record names. Raises
    BytesMissing when the bytes are gone or not `size` long."""
    if pages is None or size > MEMO_BYTES:
        return await _read_whole(blobs, key, size)
    body = await pages.derived("blob", 0, key, partial(_read_whole, blobs, key, size), len)
    assert body is not None  # _read_whole returns bytes or raises
    return body


async def _read_whole(blobs: BlobStore, key: str, size: int) -> bytes:
    try:
        body = b"".join([chunk async for chunk in blobs.open(key, length=size)])
    except BlobNotFound as exc:
        raise BytesMissing("The file's bytes are missing from storage.") from exc
    if len(body) != size:
        raise BytesMissing("The file's bytes in storage are not the recorded size.")
    return body


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
    pages: PageCache | None = None,
) -> Response:
    """The response for a stored distribution file (or `.metadata`) whose bytes are blob `key`:
    304 when `If-None-Match` names its sha256 ETag; with `redirect` (WHEELYARD_BLOB_REDIRECT)
    a GET gets a presigned URL of the object store when it has one; otherwise the bytes,
    streamed, with Range support. With `pages`, a whole body of at most `MEMO_BYTES` (a
    `.metadata`, which resolvers ask for again and again) is kept in this process's memory:
    blobs are content-addressed and never change, and the caller has found a live record
    the caller may read before asking."""
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
    range_header = request.headers.get("range")
    whole = request.method == "GET" and not range_header
    if whole and cache_control.startswith("public"):
        # Anyone may have these bytes: the server may answer the next such request itself
        # (web/replay.py: a body kept here, or a file sent by path), until a deletion or a
        # visibility change moves its token.
        replay.accept(request.scope)
    if pages is not None and whole and size <= MEMO_BYTES:
        body = await read_whole(blobs, key, size, pages)
        base = {"Accept-Ranges": "bytes", **headers}
        return Response(body, headers=base, media_type="application/octet-stream")
    return await serve_blob(
        blobs,
        key,
        size=size,
        method=request.method,
        range_header=range_header,
        headers=headers,
        pathsend=PATHSEND in request.scope.get("extensions", ()),
    )
