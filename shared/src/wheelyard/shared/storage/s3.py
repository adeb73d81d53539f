"""A BlobStore on an S3-compatible object store (AWS S3, MinIO, SeaweedFS) via the minio SDK.

The SDK blocks, so every call runs in a worker thread. A write streams to a temporary object
`<prefix>tmp/<uuid>` with a multipart upload of unknown length, fed through a bounded queue from
the event loop to one uploading thread; on commit the object is copied server-side to its
content-addressed key and the temporary one removed. Memory per write is the queue (a few
chunks) plus the one part the SDK buffers (`PART_SIZE`). Writes a crash interrupted are cleaned
up at start and by a bucket lifecycle rule (`recover_leftovers`).

Longer than our usual 400 lines: the store, its writer's thread hand-off and the crash
recovery share one client, its error mapping and the temp-object naming.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import anyio
import urllib3
from anyio import to_thread
from minio import Minio
from minio.commonconfig import ENABLED, ComposeSource, Filter
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule

from wheelyard.shared.errors import (
    BackendUnavailable,
    ConfigurationError,
)
from wheelyard.shared.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    ListedBlob,
    sha256_of_key,
)
from wheelyard.shared.storage.s3_options import S3Options
from wheelyard.shared.storage.tempdir import STALE_AFTER
from wheelyard.shared.storage.writer import VerifyingWriter

log = logging.getLogger(__name__)

#: Multipart part size: the SDK holds one part in memory. 16 MiB x 10,000 parts allows 156 GiB.
PART_SIZE = 16 * 1024 * 1024
#: Chunks that may wait between the event loop and the uploading thread.
QUEUE_CHUNKS = 4

#: Multipart uploads under `tmp/` older than this are abandoned: the lifecycle rule and the
#: start-up sweep abort them (a live write of the largest file takes hours, not a day).
MULTIPART_STALE_DAYS = 1
LIFECYCLE_RULE_ID = "wheelyard-abort-abandoned-uploads"

_T = TypeVar("_T")
_PROBE = b"wheelyard ping"
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "ResourceNotFound", "NoSuchObject"})


def _http_client(*, connect: float, read: float, retries: int) -> urllib3.PoolManager:
    # The SDK's default pool waits 5 minutes to connect and retries 5 times: a dead endpoint
    # would hang requests and health checks. Fail fast on connect, retry a little on 5xx.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect, read=read),
        maxsize=10,
        retries=urllib3.Retry(
            total=retries,
            connect=min(retries, 1),
            read=min(retries, 1),
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )


class S3BlobStore:
    """Content-addressed blobs in `bucket`, every object name under `prefix`.

    Keys that are not exactly `blob_key_for(...)` strings name no blob: `stat` returns None,
    `open` raises `BlobNotFound`, `delete` and `url_for` raise `ValueError`. An unreachable or
    refusing endpoint raises `BackendUnavailable(part="blobs")`. The bucket is created on first
    write (`ensure_bucket`), with a lifecycle rule that aborts multipart uploads under `tmp/`
    a day after they started; `recover_leftovers` also aborts them at start (see there).
    """

    def __init__(self, bucket: str, options: S3Options, prefix: str = "") -> None:
        try:
            check_bucket_name(bucket)
        except ValueError as e:
            raise ConfigurationError(f"WHEELYARD_BLOB_URL: bad bucket name {bucket!r}: {e}") from e
        self.bucket = bucket
        self.options = options
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        #: Streams opened by `open` and not yet finished or closed (tests and metrics see leaks).
        self.open_streams = 0
        self._bucket_ready = False
        self._lifecycle_ready = False
        self._recovery: asyncio.Task[None] | None = None
        self._pools: list[urllib3.PoolManager] = []
        # A read timeout bounds how long a stalled endpoint can hold a request (and a reader
        # being cancelled, which waits for its current read). Server-side copies are assumed
        # to fit: AWS S3 answers a copy with an early 200 and keeps the connection alive, and
        # SeaweedFS copies 1 GiB in under a second. TODO: confirm multi-GiB copies on MinIO.
        self._client = self._make_client(connect=3, read=60, retries=3)
        # Health checks must answer within seconds even when the endpoint accepts connections
        # and then stalls.
        self._ping_client = self._make_client(connect=3, read=5, retries=0)

    def _make_client(self, *, connect: float, read: float, retries: int) -> Minio:
        pool = _http_client(connect=connect, read=read, retries=retries)
        self._pools.append(pool)
        try:
            return Minio(
                self.options.endpoint,
                access_key=self.options.access_key,
                secret_key=self.options.secret_key,
                secure=self.options.secure,
                region=self.options.region,
                http_client=pool,
            )
        except ValueError as e:
            raise ConfigurationError(
                f"WHEELYARD_S3_ENDPOINT: {self.options.endpoint!r} is not host:port ({e})"
            ) from e

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, endpoint={self.options.endpoint!r})"

    def _where(self) -> str:
        return f"S3 {self.options.endpoint} bucket {self.bucket!r}"

    async def _call(
        self, fn: Callable[..., _T], *args: Any, abandon: bool = False, **kwargs: Any
    ) -> _T:
        """Run one SDK call in a worker thread; transport failures become BackendUnavailable.
        S3Error (an answer from the server) is left for the caller to interpret. With
        `abandon`, a cancelled caller returns at once and the thread finishes on its own
        (only for calls whose result nobody else touches)."""
        try:
            return await to_thread.run_sync(lambda: fn(*args, **kwargs), abandon_on_cancel=abandon)
        except S3Error:
            raise
        except (urllib3.exceptions.HTTPError, MinioException, OSError) as e:
            raise BackendUnavailable(f"{self._where()}: {_describe(e)}", part="blobs") from e

    def _name(self, key: str) -> str:
        sha256_of_key(key)  # raises ValueError for anything but a well-formed key
        return self.prefix + key

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (idempotent, safe under concurrency), and give
        it the lifecycle rule of `ensure_lifecycle_rule`."""
        if self._bucket_ready:
            return
        await self._ensure_bucket_with(self._client)
        await self.ensure_lifecycle_rule()

    async def ensure_lifecycle_rule(self) -> bool:
        """Make sure the bucket has LIFECYCLE_RULE_ID: abort multipart uploads under `tmp/`
        (ours, abandoned by a killed process) a day after they started. The bucket's other
        rules are kept. Returns False, with a warning, when the endpoint refuses lifecycle
        rules (the start-up sweep of `recover_leftovers` covers them then)."""
        if self._lifecycle_ready:
            return True
        rule = Rule(
            ENABLED,
            rule_filter=Filter(prefix=f"{self.prefix}tmp/"),
            rule_id=LIFECYCLE_RULE_ID + (f"-{self.prefix.strip('/')}" if self.prefix else ""),
            abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(
                days_after_initiation=MULTIPART_STALE_DAYS
            ),
        )

        def apply() -> None:
            current = self._client.get_bucket_lifecycle(self.bucket)
            rules = [r for r in (current.rules if current else []) if r.rule_id != rule.rule_id]
            self._client.set_bucket_lifecycle(self.bucket, LifecycleConfig([*rules, rule]))

        try:
            await self._call(apply)
        except (S3Error, BackendUnavailable) as e:
            log.warning(
                "%s: cannot set the lifecycle rule that aborts abandoned uploads (%s); "
                "they are aborted at start instead",
                self._where(),
                _describe(e),
            )
            return False
        self._lifecycle_ready = True
        return True

    async def _ensure_bucket_with(self, client: Minio, *, abandon: bool = False) -> None:
        try:
            if not await self._call(client.bucket_exists, self.bucket, abandon=abandon):
                await self._call(client.make_bucket, self.bucket, abandon=abandon)
        except S3Error as e:
            if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise _refused(self, e) from e
        self._bucket_ready = True

    async def stat(self, key: str) -> BlobInfo | None:
        """Return the blob's size, or None when no committed blob has that key."""
        try:
            name = self._name(key)
        except ValueError:
            return None
        try:
            st = await self._call(self._client.stat_object, self.bucket, name)
        except S3Error as e:
            if _is_missing(e):
                return None
            raise _refused(self, e) from e
        return BlobInfo(key=key, size=int(st.size or 0))

    async def open(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the blob's bytes from `offset` (at most `length` of them) in chunks of at most
        CHUNK_SIZE; nothing when `offset` is at or past the end. Raises `BlobNotFound` on the
        first iteration. Closing the iterator early (`aclose`) drops the HTTP response at once,
        so a client that disconnects does not keep a connection or a thread busy."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        try:
            name = self._name(key)
        except ValueError:
            raise BlobNotFound(key) from None
        if length == 0:
            if await self.stat(key) is None:
                raise BlobNotFound(key)
            return
        try:
            resp = await self._call(
                self._client.get_object, self.bucket, name, offset=offset, length=length or 0
            )
        except S3Error as e:
            if _is_missing(e):
                raise BlobNotFound(key) from None
            if e.code == "InvalidRange":  # offset at or past the end: the blob exists
                return
            raise _refused(self, e) from e
        self.open_streams += 1
        try:
            while True:
                data = await self._call(resp.read, CHUNK_SIZE)
                if not data:
                    break
                yield data
        finally:
            self.open_streams -= 1
            # Closing drops the socket instead of draining the rest of the body; neither call
            # waits on the network, so it also works when the generator is finalized late.
            resp.close()
            resp.release_conn()

    def writer(
        self,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        max_size: int | None = None,
    ) -> S3BlobWriter:
        """Return a new writer; see `BlobWriter` for the commit/discard promise."""
        return S3BlobWriter(
            self, expected_sha256=expected_sha256, expected_size=expected_size, max_size=max_size
        )

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is fine. Raises ValueError for a malformed key."""
        name = self._name(key)
        try:
            await self._call(self._client.remove_object, self.bucket, name)
        except S3Error as e:
            if not _is_missing(e):
                raise _refused(self, e) from e

    async def url_for(self, key: str, *, expires_seconds: int = 300) -> str | None:
        """A presigned GET URL valid for `expires_seconds`, built on the configured endpoint
        (so it only helps clients that can reach that endpoint). Does not check existence."""
        name = self._name(key)
        # May ask the server for the bucket's region once (cached by the SDK): hence a thread.
        return await self._call(
            self._client.presigned_get_object,
            self.bucket,
            name,
            expires=timedelta(seconds=expires_seconds),
        )

    async def local_path(self, key: str) -> str | None:
        """Always None: objects live on the S3 server (a GET streams them, or a presigned
        redirect sends the client there); nothing is checked."""
        return None

    def staging_dir(self) -> None:
        """Always None: objects live on the S3 server, so no local file can become one by a
        move (write it through `writer()`)."""
        return None

    async def adopt(self, path: Path, key: str) -> None:
        """Always raises `ValueError`: an S3 store has no staging directory (see
        `staging_dir`)."""
        raise ValueError(f"an S3 blob store cannot adopt {path}: it has no staging directory")

    async def ping(self) -> None:
        """Create the bucket if needed, then write, read back and remove a tiny probe object,
        with short timeouts; raise `BackendUnavailable(part="blobs")` if any step fails."""
        client = self._ping_client
        name = f"{self.prefix}tmp/ping-{uuid.uuid4().hex}"
        try:
            await self._ensure_bucket_with(client, abandon=True)
            # Abandonable: a readiness probe that times out must return now, not when the
            # stalled request gives up; the whole round trip runs in one thread for that.
            body = await self._call(self._probe, client, name, abandon=True)
        except S3Error as e:
            raise _refused(self, e) from e
        if body != _PROBE:
            raise BackendUnavailable(f"{self._where()}: probe read back wrong bytes", part="blobs")

    def _probe(self, client: Minio, name: str) -> bytes:
        client.put_object(self.bucket, name, io.BytesIO(_PROBE), len(_PROBE))
        try:
            resp = client.get_object(self.bucket, name)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()
        finally:
            client.remove_object(self.bucket, name)

    async def list_blobs(self) -> AsyncIterator[ListedBlob]:
        """Every committed blob under `<prefix>sha256/`, listed one top-level prefix (1/256 of
        the store) per worker-thread call; anything that is not a blob key is skipped."""
        for top in range(256):
            prefix = f"{self.prefix}sha256/{top:02x}/"

            def listing(prefix: str = prefix) -> list[ListedBlob]:
                found = []
                for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                    key = o.object_name[len(self.prefix) :]
                    try:
                        sha256_of_key(key)
                    except ValueError:
                        continue
                    modified = o.last_modified or datetime.now(UTC)
                    found.append(ListedBlob(key=key, size=o.size or 0, modified=modified))
                return found

            try:
                batch = await self._call(listing)
            except S3Error as e:
                if _is_missing(e):
                    return
                raise _refused(self, e) from e
            for blob in batch:
                yield blob

    async def list_temp(self) -> list[str]:
        """Names (relative to the prefix) of temporary objects: writes being committed or
        abandoned by a crash."""
        return [name for name, _ in await self._temp_objects()]

    async def _temp_objects(self) -> list[tuple[str, datetime | None]]:
        def listing() -> list[tuple[str, datetime | None]]:
            objs = self._client.list_objects(
                self.bucket, prefix=f"{self.prefix}tmp/", recursive=True
            )
            return [(o.object_name[len(self.prefix) :], o.last_modified) for o in objs]

        try:
            return await self._call(listing)
        except S3Error as e:
            if _is_missing(e):
                return []
            raise _refused(self, e) from e

    async def sweep_temp(self, older_than_seconds: float) -> int:
        """Remove temporary objects older than `older_than_seconds` (crash leftovers); return
        how many were removed. Incomplete multipart uploads are left to a lifecycle rule."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        removed = 0
        for name, modified in await self._temp_objects():
            if modified is not None and modified < cutoff:
                await self._remove_quietly(self.prefix + name)
                removed += 1
        return removed

    async def abort_stale_uploads(self, older_than_seconds: float) -> int:
        """Abort the multipart uploads under `tmp/` started more than `older_than_seconds`
        ago (a writer killed mid-upload leaves one, invisible to `list_temp`, its parts
        stored and billed); return how many were aborted.

        The minio SDK has no public call for this (`list_incomplete_uploads` went in 7.0), so
        its ListMultipartUploads/AbortMultipartUpload helpers are used; the contract suite
        runs this against SeaweedFS, so an SDK change shows there.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        prefix = f"{self.prefix}tmp/"

        def sweep() -> int:
            aborted, marker = 0, None
            while True:
                page = self._client._list_multipart_uploads(
                    self.bucket, prefix=prefix, key_marker=marker
                )
                for upload in page.uploads:
                    started = upload.initiated_time
                    if upload.object_name and upload.upload_id and started and started < cutoff:
                        self._client._abort_multipart_upload(
                            self.bucket, upload.object_name, upload.upload_id
                        )
                        aborted += 1
                if not page.is_truncated or not page.uploads:
                    return aborted
                # Our temp names are unique, so the key alone is a sound page marker.
                marker = page.next_key_marker or page.uploads[-1].object_name

        try:
            return await self._call(sweep)
        except S3Error as e:
            if _is_missing(e):
                return 0
            raise _refused(self, e) from e

    async def recover_leftovers(self) -> int:
        """Start cleaning up after crashed writers, in the background: temp objects older than
        STALE_AFTER are removed, multipart uploads under `tmp/` started more than
        MULTIPART_STALE_DAYS ago aborted, and the lifecycle rule set (`ensure_lifecycle_rule`).
        Age, not ownership, decides, since replicas share the bucket: a live write is never
        that old. Returns 0 at once (S3 being down must not hold up the start); what is
        removed is logged; `close` stops it."""
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover(), name="s3-recover-leftovers")
        return 0

    async def _recover(self) -> None:
        try:
            removed = await self.sweep_temp(STALE_AFTER)
            aborted = await self.abort_stale_uploads(MULTIPART_STALE_DAYS * 86400)
            if await self._call(self._client.bucket_exists, self.bucket):
                await self.ensure_lifecycle_rule()
        except (S3Error, BackendUnavailable) as e:
            log.warning("%s: leftovers of crashed writes not cleaned up: %s", self._where(), e)
            return
        if removed or aborted:
            log.warning(
                "%s: removed %d temporary object(s) and aborted %d multipart upload(s) left "
                "by crashed writes",
                self._where(),
                removed,
                aborted,
            )

    async def _remove_quietly(self, name: str) -> None:
        try:
            await self._call(self._client.remove_object, self.bucket, name)
        except (S3Error, BackendUnavailable) as e:
            # A leftover temp object is garbage, not an error for the caller: sweep_temp
            # removes it later.
            log.warning("could not remove temporary object %s: %s", name, e)

    async def close(self) -> None:
        """Stop the start-up recovery, close pooled connections; the store is unusable
        afterwards."""
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        for pool in self._pools:
            pool.clear()


class _Aborted(Exception):
    """Raised inside the hand-off once the write was abandoned."""


class _Pipe:
    """A bounded, thread-safe hand-off of chunks that the SDK reads as a file.

    The event loop `put`s chunks from a worker thread (waiting there while the queue is full);
    the uploading thread `read`s exactly the sizes it asks for. `abort` wakes both sides with
    `_Aborted`.
    """

    def __init__(self, max_chunks: int) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[bytes | bytearray] = deque()
        self._max = max_chunks
        self._eof = False
        self.aborted = False
        self._head = memoryview(b"")

    def put(self, chunk: bytes | bytearray) -> None:
        """Queue `chunk`, waiting for room (call from a worker thread)."""
        with self._cond:
            while len(self._chunks) >= self._max and not self.aborted:
                self._cond.wait()
            if self.aborted:
                raise _Aborted
            self._chunks.append(chunk)
            self._cond.notify_all()

    def close(self) -> None:
        """Mark the end of the data: `read` returns b"" once the queue is drained."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Drop queued data and make every current and later `put`/`read` raise."""
        with self._cond:
            self.aborted = True
            self._chunks.clear()
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        """Return `size` bytes, fewer only at the end of the data (file-like, for the SDK)."""
        if size is None or size < 0:
            raise ValueError("read() needs a size: the data has no known length")
        parts: list[bytes | memoryview] = []
        need = size
        while need > 0:
            if not self._head:
                with self._cond:
                    while not self._chunks and not self._eof and not self.aborted:
                        self._cond.wait()
                    if self.aborted:
                        raise _Aborted("write abandoned")
                    if not self._chunks:
                        break
                    self._head = memoryview(self._chunks.popleft())
                    self._cond.notify_all()
            piece = self._head[:need]
            self._head = self._head[len(piece) :]
            parts.append(piece)
            need -= len(piece)
        return b"".join(parts)


class S3BlobWriter(VerifyingWriter):
    """One write into an `S3BlobStore`; use with `async with` (see `BlobWriter`): a streaming
    multipart upload of unknown length to a temporary key, copied to the content-addressed key
    on commit. Memory stays O(QUEUE_CHUNKS x CHUNK_SIZE + PART_SIZE)."""

    def __init__(
        self,
        store: S3BlobStore,
        *,
        expected_sha256: str | None,
        expected_size: int | None,
        max_size: int | None,
    ) -> None:
        super().__init__(
            expected_sha256=expected_sha256, expected_size=expected_size, max_size=max_size
        )
        self._store = store
        self._pipe = _Pipe(QUEUE_CHUNKS)
        self._temp_name = f"{store.prefix}tmp/{uuid.uuid4().hex}"
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def _started(self) -> bool:
        return self._thread is not None

    async def __aenter__(self) -> S3BlobWriter:
        await self._store.ensure_bucket()
        # A plain thread rather than a worker-pool task: it lives as long as the `async with`
        # body, which no task group of ours can span.
        self._thread = threading.Thread(
            target=self._upload, name=f"s3-upload-{self._temp_name}", daemon=True
        )
        self._thread.start()
        return self

    def _upload(self) -> None:
        store = self._store
        try:
            store._client.put_object(
                store.bucket,
                self._temp_name,
                cast(BinaryIO, self._pipe),  # the SDK only calls read(size)
                length=-1,
                part_size=PART_SIZE,
                # One part in flight: parallel parts would multiply the memory per write.
                num_parallel_uploads=1,
            )
        except BaseException as e:
            # The SDK has already aborted the multipart upload; wake a waiting producer.
            self._error = e
            self._pipe.abort()

    async def _write_out(self, data: bytes | bytearray) -> None:
        h, pipe = self._hash, self._pipe

        def hash_and_queue() -> None:
            h.update(data)  # hashlib releases the GIL on large buffers
            pipe.put(data)

        try:
            # Abandoned on cancel: `abort` in _discard wakes a thread left waiting for room.
            await to_thread.run_sync(hash_and_queue, abandon_on_cancel=True)
        except _Aborted:
            raise self._upload_failure() from self._error

    def _upload_failure(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"{self._store._where()}: upload failed: {_describe(self._error)}", part="blobs"
        )

    async def _publish(self, key: str) -> None:
        # Only now is the upload finished: a digest mismatch found before aborts it instead.
        self._pipe.close()
        assert self._thread is not None
        await to_thread.run_sync(self._thread.join, abandon_on_cancel=True)
        if self._error is not None:
            raise self._upload_failure() from self._error
        store = self._store
        # Same key means same bytes: if another writer got there first, there is nothing to copy.
        if await store.stat(key) is None:
            try:
                # compose_object is a plain CopyObject up to 5 GiB and a multipart
                # UploadPartCopy beyond, where CopyObject is refused.
                await store._call(
                    store._client.compose_object,
                    store.bucket,
                    store.prefix + key,
                    [ComposeSource(store.bucket, self._temp_name)],
                )
            except S3Error as e:
                raise _refused(store, e) from e
        with anyio.CancelScope(shield=True):
            await store._remove_quietly(self._temp_name)

    async def _discard(self) -> None:
        self._pipe.abort()
        if self._thread is not None:
            # Wait for the SDK to abort its multipart upload, so nothing is left behind.
            await to_thread.run_sync(self._thread.join)
        # The upload may have completed just before the abort (e.g. a digest mismatch found
        # after the last part): remove the temporary object in any case.
        await self._store._remove_quietly(self._temp_name)


def _is_missing(e: S3Error) -> bool:
    return e.code in _MISSING or (e.response is not None and e.response.status == 404)


def _refused(store: S3BlobStore, e: S3Error) -> BackendUnavailable:
    return BackendUnavailable(f"{store._where()}: {e.code}: {e.message}", part="blobs")


def _describe(e: BaseException | None) -> str:
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        e = e.reason
    if isinstance(e, S3Error):
        return f"{e.code}: {e.message}"
    return f"{type(e).__name__}: {e}"
