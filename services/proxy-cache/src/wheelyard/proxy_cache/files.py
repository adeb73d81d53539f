"""Proxy files: served from the blob store when the repository holds them, fetched from its
upstream exactly once when not, and never stored or handed out complete unless their sha256
matches.

What a repository holds is its `proxy_files` records (`records`), never the blob store: the
store is shared and content-addressed, so a blob that exists may be a private hosted file, or a
deleted one, that an upstream page merely lists the sha256 of. Without a record the file is
fetched from the repository's own upstream and verified even when a blob with that sha256
exists (then the bytes are only checked, not written again); the record is made once they
matched.

A cold file is fetched by one background task per process (`FileFetch`), never by a request:
the task holds a cache lock on (repository, sha256) (so replicas wait instead of fetching too)
and streams the upstream body into a local spool file, hashing it on the way. Requests in the
same process follow the spool as it grows, so every concurrent cold request is streamed the
bytes while the upstream is asked once; a request that goes away does not stop the task, so the
file is still cached. Once every byte matched the listed sha256 and size, the spool becomes the
blob: a filesystem store's spool is written in the store's staging directory and renamed into
place (`BlobStore.adopt`: each byte is written to disk once), an S3 store's is uploaded from the
spool.

What a client can never get is a complete-looking bad file: the response carries the expected
Content-Length, and the last byte is held back until every byte has matched the listed sha256
and size; on a mismatch or a truncated upstream body the stream is aborted (the client sees a
short read), or, when the failure is known before the first byte, a 502 is returned. Storing
the blob (a disk flush and a rename) and recording it (a database write, batched with the other
files recorded meanwhile: `records.Recorder`) come after the last byte, off the client's path:
the fetch runs until both are done, so a request meanwhile still follows its spool, and a
failure there only leaves the file uncached. Other replicas wait on the lock, then serve the
committed blob.

Files the upstream lists without a sha256 cannot be verified, so they are streamed through
and not cached.

(Over 400 lines: the fetch task, the readers that follow its spool and the response that picks
between them are one mechanism, and split apart they would share private state.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from wheelyard.proxy_cache import records
from wheelyard.proxy_cache.downloads import DownloadStamps
from wheelyard.proxy_cache.upstream import UpstreamClient, failures_told
from wheelyard.shared.cache import Cache, Lock, LockTimeout
from wheelyard.shared.concurrency import SingleFlight
from wheelyard.shared.config import UpstreamConfig
from wheelyard.shared.domain.blobgc import BlobBeingDeleted
from wheelyard.shared.errors import IntegrityFailure, UpstreamError
from wheelyard.shared.storage import BlobStore, blob_key_for
from wheelyard.shared.web.conditional import if_none_match_matches
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.shared.web.streaming import BytesMissing, stored_file_response

log = logging.getLogger(__name__)

#: The cross-process lock on one file's fetch: its lifetime, renewed while bytes flow.
LOCK_TTL = 30.0
#: How long a replica waits for another's fetch before fetching itself (duplicates are safe).
LOCK_WAIT = 120.0
#: Spool reads per step.
READ_STEP = 1024 * 1024
#: Bytes received ahead of the spool at most before the download waits for the disk.
SPOOL_AHEAD = 256 * 1024
#: Buffers per vectored write (Linux takes at most 1024).
IOV_MAX = 512


@dataclass(frozen=True)
class Wanted:
    """A file of a proxy repository as its page lists it: where the repository's upstream
    serves it and what its bytes must be."""

    repository_id: int
    project: str
    filename: str  # as in our URL: `.metadata` appended for PEP 658 metadata
    url: str
    upstream: UpstreamConfig
    sha256: str | None
    size: int | None
    upload_time: datetime | None = None


class FileFetch:
    """One in-flight fetch of a file into the blob store, followed by local readers.

    The spool is a file in `spool_dir`. With `staged` it keeps its name there (a blob
    store's staging directory, whose start-up sweep removes what a crash leaves), so that it
    can become the blob (`staged_path`); otherwise it is anonymous (created, then unlinked at
    once): nothing is left behind whatever happens to the process, and it lives as long as a
    descriptor on it is open. Chunks are appended and hashed by one writer at a time in a
    worker thread; the chunks that arrive while a write is under way go together in the next,
    so a fast upstream costs a few trips to a thread per file, not one per network read.
    """

    def __init__(self, sha256: str, size: int | None, spool_dir: Path, *, staged: bool) -> None:
        self.sha256 = sha256
        self.size = size
        self.received = 0  # bytes appended
        self.written = 0  # bytes in the spool (and hashed), readable by followers
        self.length: int | None = size  # what the client is told, once known
        self.started = asyncio.Event()  # upstream headers accepted (or finished)
        # Every byte is in the spool and matched the listed sha256 and size: readers may
        # send the last byte (storing and recording it may still be under way).
        self.verified = False
        self.finished = asyncio.Event()
        self.error: BaseException | None = None
        self.from_store = False  # the blob was already there (another replica stored it)
        self._changed = asyncio.Event()
        self._unspooled: list[bytes] = []  # received, not yet in the spool
        self._unspooled_bytes = 0
        self._spooler: asyncio.Task[None] | None = None
        self._hash = hashlib.sha256()
        self._spool_dir = spool_dir
        self._staged = staged
        self._fd = -1  # the spool, once `open`
        #: The spool's name while it has one (`staged`, until adopted or closed).
        self.staged_path: Path | None = None

    async def open(self) -> None:
        """Create the spool, in a worker thread: creating a file waits for the file system's
        journal, which is busy behind other files' flushes during a burst of cold files (the
        event loop stalled there for up to seconds, py-spy and cProfile of 102 cold wheels)."""
        self._fd, self.staged_path = await to_thread.run_sync(
            _create_spool, self._spool_dir, self._staged
        )

    @property
    def spooled_sha256(self) -> str:
        """Hex sha256 of the bytes in the spool (all of them once `spooled` returned)."""
        return self._hash.hexdigest()

    async def append(self, chunk: bytes) -> None:
        """Add `chunk` to the spool, written in the background; waits only while more than
        `SPOOL_AHEAD` bytes are still to be written (the disk is slower than the network).
        Raises the spool's write error, if one happened."""
        spooler = self._spooler
        if spooler is not None and spooler.done():
            spooler.result()  # raises what a write raised
        self._unspooled.append(chunk)
        self._unspooled_bytes += len(chunk)
        self.received += len(chunk)
        if spooler is None or spooler.done():
            self._spooler = asyncio.create_task(self._spool())
        if self._unspooled_bytes > SPOOL_AHEAD:
            await self.spooled()

    async def spooled(self) -> None:
        """Wait until everything appended is in the spool (raises a write error)."""
        while self._spooler is not None and not self._spooler.done():
            await asyncio.shield(self._spooler)
        if self._spooler is not None:
            self._spooler.result()

    async def _spool(self) -> None:
        while self._unspooled:
            chunks, self._unspooled = self._unspooled, []
            size, self._unspooled_bytes = self._unspooled_bytes, 0
            await to_thread.run_sync(_write_all, self._fd, chunks, self.written, self._hash)
            self.written += size
            self.progress()

    def reader_fd(self) -> int:
        """A new descriptor on the spool for one reader (the caller closes it)."""
        return os.dup(self._fd)

    def progress(self) -> None:
        """Wake every reader."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_progress(self) -> None:
        await self._changed.wait()

    def close(self) -> None:
        """Close the spool once no write to it is under way (a descriptor closed under a
        worker thread's write could be reused by another file meanwhile)."""
        spooler = self._spooler
        if spooler is not None and not spooler.done():
            spooler.add_done_callback(lambda _done: self.close())
            return
        if spooler is not None and not spooler.cancelled():
            spooler.exception()  # reported through `append`/`spooled`, or moot
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self.staged_path is not None:  # not adopted: a spool, nothing more
            with contextlib.suppress(OSError):
                os.unlink(self.staged_path)
            self.staged_path = None


class ProxyFiles:
    """Serving proxy files (see the module docstring). One per process."""

    def __init__(
        self,
        *,
        blobs: BlobStore,
        cache: Cache,
        client: UpstreamClient,
        spool_dir: Path,
        sessions: records.SessionFactory,
        pages: PageCache,
    ) -> None:
        """`pages`: the process's page cache, which keeps the records of files served."""
        self.stamps = DownloadStamps(sessions)
        self.recorder = records.Recorder(sessions)
        self.blobs = blobs
        self.pages = pages
        self.cache = cache
        self.client = client
        # A spool written where the store can adopt it becomes the blob without a copy.
        staging = blobs.staging_dir()
        self.spool_dir = staging if staging is not None else spool_dir
        self._staged = staging is not None
        self.sessions = sessions
        self._fetches: SingleFlight[tuple[int, str], None] = SingleFlight()

    async def aclose(self) -> None:
        """Cancel fetches still running (shutdown)."""
        tasks = self._fetches.tasks()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self.recorder.aclose()
        await self.stamps.aclose()

    async def response(
        self, request: Request, wanted: Wanted, *, cache_control: str, redirect: bool
    ) -> Response:
        """The response for `wanted`: 304 for a matching `If-None-Match`, the stored blob when
        the repository holds the file (a record with the listed sha256), else the upstream's
        bytes as they arrive (the only fetch of this file for this repository in the
        process), recorded once verified."""
        sha256 = wanted.sha256
        if sha256 is None:
            headers = {"Cache-Control": cache_control}
            return await self._pass_through(wanted.url, wanted.upstream, request.method, headers)
        key = blob_key_for(sha256)

        async def stored(size: int) -> Response:
            return await stored_file_response(
                request,
                self.blobs,
                key=key,
                size=size,
                sha256=sha256,
                cache_control=cache_control,
                redirect=redirect,
                pages=self.pages,
            )

        etag = f'"{sha256}"'
        headers = {"ETag": etag, "Cache-Control": cache_control}
        if if_none_match_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        held = await self._held(wanted.repository_id, wanted.filename, sha256)
        if held is not None:
            # A presigned redirect does not look at the bytes: make sure they are there.
            if not redirect or await self.blobs.stat(key) is not None:
                try:
                    response = await stored(held.size)
                except BytesMissing:
                    pass  # removed from storage since it was recorded: fetch it again
                else:
                    self.stamps.note(wanted.repository_id, wanted.filename, held.last_downloaded)
                    return response
            self._forget_held(wanted.repository_id, wanted.filename, sha256)
        size = wanted.size
        method = request.method
        if method == "HEAD" and size is not None:
            # Everything a HEAD needs is on the page; no reason to fetch the file for it.
            return Response(
                headers={**headers, "Accept-Ranges": "bytes", "Content-Length": str(size)},
                media_type="application/octet-stream",
            )
        fetch = self._join(wanted)
        if method == "HEAD" or request.headers.get("range"):
            # A range of a file we do not hold yet: cache it whole, then answer from the blob.
            await fetch.finished.wait()
            if fetch.error is not None:
                raise _client_error(fetch.error)
            return await stored(await self._stored_size(key))
        await _first_of(fetch.started, fetch.finished)
        if fetch.error is not None:
            raise _client_error(fetch.error)
        if fetch.from_store:
            return await stored(await self._stored_size(key))
        if fetch.length is not None:
            headers["Content-Length"] = str(fetch.length)
        return StreamingResponse(
            _follow(fetch, self.blobs, key), headers=headers, media_type="application/octet-stream"
        )

    async def ensure(self, wanted: Wanted) -> bool:
        """Make the repository hold `wanted` without serving it (pre-fetching): False when it
        held the file already, True once this call (or a fetch it joined) fetched, verified
        and recorded it. The fetch is the one `response` starts (one per file and process,
        the cross-replica lock, the verified write). Raises UpstreamError (with the reason)
        when the file cannot be fetched or its bytes do not match, and IntegrityFailure when
        the index lists no sha256 (such files are never cached)."""
        sha256 = _listed_sha256(wanted)
        key = blob_key_for(sha256)
        async with self.sessions() as session:
            held = await records.find(session, wanted.repository_id, wanted.filename)
        if held is not None and held.sha256 == sha256 and await self.blobs.stat(key) is not None:
            return False
        return await self.fetch(wanted)

    async def fetch(self, wanted: Wanted) -> bool:
        """Fetch `wanted` (listed with its sha256) as a client's first request would, joining
        a fetch of it under way, without serving it: True once the bytes were fetched,
        verified and recorded, False when the fetch found them stored for the repository
        already. Raises as `ensure` does."""
        _listed_sha256(wanted)
        fetch = self._join(wanted)
        await fetch.finished.wait()
        if fetch.error is not None:
            if isinstance(fetch.error, IntegrityFailure):
                raise UpstreamError(f"wrong bytes from the upstream: {fetch.error}")
            raise _client_error(fetch.error)
        return not fetch.from_store

    async def _held(self, repository_id: int, filename: str, sha256: str) -> records.Held | None:
        """The repository's record of `filename` when it names these bytes (`sha256`), kept in
        memory once found: a record says the repository's own upstream delivered them
        verified, which stays true (a record for other bytes is another key)."""

        async def load() -> records.Held | None:
            async with self.sessions() as session:
                held = await records.find(session, repository_id, filename)
            return held if held is not None and held.sha256 == sha256 else None

        return await self.pages.derived(
            f"held:{repository_id}", 0, f"{filename}|{sha256}", load, records.Held.size_estimate
        )

    def _forget_held(self, repository_id: int, filename: str, sha256: str) -> None:
        self.pages.drop_derived(f"held:{repository_id}", 0, f"{filename}|{sha256}")

    async def _stored_size(self, key: str) -> int:
        info = await self.blobs.stat(key)
        if info is None:
            raise UpstreamError("The file could not be stored.")
        return info.size

    def _join(self, wanted: Wanted) -> FileFetch:
        """The running fetch of `wanted` for its repository in this process, or a new one."""
        assert wanted.sha256 is not None
        flight = (wanted.repository_id, wanted.sha256)
        fetch: FileFetch | None = self._fetches.state(flight)
        if fetch is None:
            fetch = FileFetch(wanted.sha256, wanted.size, self.spool_dir, staged=self._staged)
            self._fetches.start(flight, partial(self._run, fetch, wanted), state=fetch)
        return fetch

    async def _run(self, fetch: FileFetch, wanted: Wanted) -> None:
        key = blob_key_for(fetch.sha256)
        url, upstream = wanted.url, wanted.upstream
        lock_cm: AbstractAsyncContextManager[Lock] | None = None
        try:
            name = f"proxy-file:{wanted.repository_id}:{fetch.sha256}"
            lock: Lock | None
            lock_cm = self.cache.lock(name, ttl=LOCK_TTL, wait=0)
            try:
                lock = await lock_cm.__aenter__()
            except LockTimeout:
                # Another replica is fetching it: it may store it for us.
                lock_cm = self.cache.lock(name, ttl=LOCK_TTL, wait=LOCK_WAIT)
                try:
                    lock = await lock_cm.__aenter__()
                except LockTimeout:
                    lock, lock_cm = None, None  # the other replica is slow: fetch as well
            write_started = await records.write_clock(self.sessions)
            # A fetch that held the lock before (in this process or another replica) stored
            # the bytes before letting go. So when they are not stored, nobody has fetched the
            # file and the upstream is asked at once (no record to look for: one is only made
            # for stored bytes); when they are, the record says whether this repository has
            # them (else they are another repository's or a hosted file's: only checked).
            stored = await self.blobs.stat(key)
            if stored is not None:
                held = await self._find(wanted.repository_id, wanted.filename)
                if held is not None and held.sha256 == fetch.sha256:
                    fetch.from_store = True  # another fetch stored it for this repository
                    return
            await fetch.open()
            response = await self.client.open_file(url, upstream)
            await self._download(fetch, response, lock)
            if stored is None:
                # Else the bytes are there already (another repository's or a hosted file):
                # they were only checked.
                await self._store(fetch, key)
            for attempt in range(3):
                try:
                    await self.recorder.record(
                        records.Verified(
                            repository_id=wanted.repository_id,
                            project=wanted.project,
                            filename=wanted.filename,
                            sha256=fetch.sha256,
                            size=fetch.written,
                            blob_key=key,
                            upload_time=wanted.upload_time,
                            write_started=write_started,
                        )
                    )
                    break
                except BlobBeingDeleted:
                    # Garbage collection was deleting these very bytes (stored earlier and
                    # no longer referenced): let it finish, then store them again.
                    if attempt == 2:
                        raise
                    await records.wait_deleted(self.sessions, key)
                    write_started = await records.write_clock(self.sessions)
                    await self._store_spool(fetch)
        except asyncio.CancelledError:
            fetch.error = UpstreamError("The server is shutting down.")
            raise
        except Exception as exc:
            fetch.error = exc
            if isinstance(exc, IntegrityFailure):
                # Wrong bytes from the upstream: never stored, never served complete.
                log.error("upstream sent wrong bytes for %s (%s): %s", url, fetch.sha256, exc)
            else:
                log.warning("fetching %s failed: %s", url, exc)
        finally:
            if lock_cm is not None:
                with contextlib.suppress(Exception):
                    await lock_cm.__aexit__(None, None, None)
            fetch.finished.set()
            fetch.started.set()
            fetch.progress()
            fetch.close()

    async def _store(self, fetch: FileFetch, key: str) -> None:
        """Make the verified spool of `fetch` the blob `key`: moved into the store when it was
        written in the store's staging directory, else copied."""
        if fetch.staged_path is None:
            await self._store_spool(fetch)
            return
        await self.blobs.adopt(fetch.staged_path, key)
        fetch.staged_path = None  # it is the blob now: closing the fetch must not remove it

    async def _store_spool(self, fetch: FileFetch) -> None:
        """Write the fetched bytes (all in the spool) to the blob store, verified again."""
        fd = fetch.reader_fd()
        try:
            async with self.blobs.writer(
                expected_sha256=fetch.sha256, expected_size=fetch.written
            ) as writer:
                position = 0
                while position < fetch.written:
                    want = min(READ_STEP, fetch.written - position)
                    data: bytes = await to_thread.run_sync(os.pread, fd, want, position)
                    if not data:
                        raise UpstreamError("The spool file ended early.")
                    await writer.write(data)
                    position += len(data)
        finally:
            os.close(fd)

    async def _find(self, repository_id: int, filename: str) -> records.Held | None:
        async with self.sessions() as session:
            return await records.find(session, repository_id, filename)

    async def _download(
        self, fetch: FileFetch, response: httpx.Response, lock: Lock | None
    ) -> None:
        """Stream the open upstream `response` into the spool (and close it); raises
        IntegrityFailure unless its bytes are the listed ones (then `fetch.verified`)."""
        try:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit():
                if fetch.size is not None and int(declared) != fetch.size:
                    raise IntegrityFailure(
                        f"the upstream announced {declared} bytes, its page says {fetch.size}"
                    )
                if fetch.length is None:
                    fetch.length = int(declared)
            fetch.started.set()
            loop = asyncio.get_running_loop()
            renew_at = loop.time() + LOCK_TTL / 3
            with failures_told(
                stalled="the upstream stalled while sending a file",
                broken="the upstream connection broke mid-file",
            ):
                async for chunk in response.aiter_bytes():
                    if fetch.size is not None and fetch.received + len(chunk) > fetch.size:
                        raise IntegrityFailure("the upstream sent more bytes than listed")
                    await fetch.append(chunk)
                    if lock is not None and loop.time() > renew_at:
                        await lock.extend(LOCK_TTL)
                        renew_at = loop.time() + LOCK_TTL / 3
            await fetch.spooled()
            if fetch.size is not None and fetch.written != fetch.size:
                raise IntegrityFailure(
                    f"expected {fetch.size} bytes, received {fetch.written} bytes"
                )
            if fetch.spooled_sha256 != fetch.sha256:
                raise IntegrityFailure(f"expected sha256 {fetch.sha256}, received another")
            # Verified: readers may finish now; storing (a disk flush) and recording (a
            # database write) happen after, off the client's path. A failure there only
            # leaves the file uncached.
            fetch.verified = True
            fetch.progress()
        finally:
            await response.aclose()

    async def _pass_through(
        self, url: str, upstream: UpstreamConfig, method: str, headers: dict[str, str]
    ) -> Response:
        response = await self.client.open_file(url, upstream)
        out = dict(headers)
        out["Cache-Control"] = "private, no-cache"  # unverified bytes: nobody may keep them
        length = response.headers.get("content-length")
        if length is not None and length.isdigit():
            out["Content-Length"] = length
        if method == "HEAD":
            await response.aclose()
            return Response(headers=out, media_type="application/octet-stream")

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx.HTTPError as exc:
                raise UpstreamError("the upstream connection broke mid-file") from exc
            finally:
                await response.aclose()

        return StreamingResponse(body(), headers=out, media_type="application/octet-stream")


def _create_spool(directory: Path, staged: bool) -> tuple[int, Path | None]:
    """A new spool file in `directory`: its descriptor, and its path when `staged` (else it
    is unlinked at once, see `FileFetch`)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="fetch-", suffix=".part", dir=directory)
    if staged:
        return fd, Path(name)
    os.unlink(name)
    return fd, None


def _write_all(fd: int, chunks: list[bytes], offset: int, digest: hashlib._Hash) -> None:
    """Hash `chunks` into `digest`, and write them one after the other at `offset` (one system
    call, mostly)."""
    for chunk in chunks:
        digest.update(chunk)  # hashlib releases the GIL on large buffers
    view = [memoryview(chunk) for chunk in chunks]
    while view:
        done = os.pwritev(fd, view[:IOV_MAX], offset)
        offset += done
        while view and done >= len(view[0]):
            done -= len(view[0])
            view.pop(0)
        if view and done:
            view[0] = view[0][done:]


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _listed_sha256(wanted: Wanted) -> str:
    if wanted.sha256 is None:
        raise IntegrityFailure("the index lists no sha256 for it, so it cannot be cached")
    return wanted.sha256


def _client_error(error: BaseException) -> Exception:
    if isinstance(error, UpstreamError):
        return error
    if isinstance(error, IntegrityFailure):
        return UpstreamError("The upstream sent a file that does not match its published sha256.")
    return UpstreamError("The file could not be fetched from the upstream.")


async def _follow(fetch: FileFetch, blobs: BlobStore, key: str) -> AsyncIterator[bytes]:
    """The bytes of `fetch` as they arrive, from the spool; the last byte only once all of
    them are verified, and an exception (an aborted response) if they never are."""
    if fetch.finished.is_set():
        # The fetch ended before this body started: the blob is complete, or there is none.
        if fetch.error is not None:
            raise _client_error(fetch.error)
        async for chunk in blobs.open(key):
            yield chunk
        return
    fd = fetch.reader_fd()  # the spool is still open while the fetch runs
    position = 0
    try:
        while True:
            ok = fetch.verified
            if not ok and fetch.finished.is_set():
                raise _client_error(fetch.error or UpstreamError("fetch failed"))
            # Hold back one byte until verified: a failure then always leaves the body short.
            limit = fetch.written if ok else fetch.written - 1
            if position < limit:
                want = min(READ_STEP, limit - position)
                # Read on the event loop: these bytes were written moments ago and are in the
                # page cache, so the read is a copy that never waits for the disk (nginx reads
                # files in its event loop too unless `aio threads` is set); a trip through a
                # worker thread cost more CPU than the copy (py-spy of a cold install).
                data = os.pread(fd, want, position)
                if not data:
                    raise UpstreamError("The spool file ended early.")
                position += len(data)
                yield data
                continue
            if ok:
                return
            await fetch.wait_progress()
    finally:
        os.close(fd)
