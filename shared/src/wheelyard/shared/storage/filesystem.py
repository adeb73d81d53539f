"""A BlobStore on a local (or mounted) directory.

Layout under `root`: committed blobs at `root/<key>` (`sha256/ab/cd/<hex>`), writes in progress
at `root/tmp/blob-*.part`. A write lands in a temp file, is fsynced and then atomically renamed
into place, so a reader sees either nothing or the whole blob. Every disk call runs in a worker
thread: the event loop never waits on the disk. The one exception is `local_path`'s look-up
of a blob the server is about to send by path: the server opens that path on the event loop
anyway (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread

from wheelyard.shared.errors import BackendUnavailable
from wheelyard.shared.storage.base import (
    MAX_READ_CHUNK,
    BlobInfo,
    BlobNotFound,
    ListedBlob,
    sha256_of_key,
)
from wheelyard.shared.storage.tempdir import TempDirClaim, claim_temp_dir, remove_files_older_than
from wheelyard.shared.storage.writer import VerifyingWriter

_TEMP_PREFIX = "blob-"
_TEMP_SUFFIX = ".part"


#: With one read in flight, memory stays at 2 x READ_CHUNK per download.
READ_CHUNK = MAX_READ_CHUNK


class FilesystemBlobStore:
    """Content-addressed blobs in a directory (see the module docstring for the layout).

    Keys that are not exactly `blob_key_for(...)` strings name no blob: `stat` returns None,
    `open` raises `BlobNotFound`, `delete` and `url_for` raise `ValueError`. No key can address
    a path outside `root`. Disk errors while writing or probing raise
    `BackendUnavailable(part="blobs")`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.temp_dir = self.root / "tmp"
        #: Streams opened by `open` and not yet finished or closed (tests and metrics see leaks).
        self.open_streams = 0
        self._claim: TempDirClaim | None = None

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    def _path_for(self, key: str) -> Path:
        sha256_of_key(key)  # raises ValueError for anything but a well-formed key
        return self.root / key

    async def stat(self, key: str) -> BlobInfo | None:
        """Return the blob's size, or None when no committed blob has that key."""
        try:
            path = self._path_for(key)
        except ValueError:
            return None
        try:
            st = await to_thread.run_sync(os.stat, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return BlobInfo(key=key, size=st.st_size)

    async def open(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the blob's bytes from `offset` (at most `length` of them) in chunks of at most
        MAX_READ_CHUNK; nothing when `offset` is at or past the end. Raises `BlobNotFound` on the
        first iteration. Closing the iterator early (`aclose`) closes the file at once."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        try:
            path = self._path_for(key)
        except ValueError:
            raise BlobNotFound(key) from None
        position, end = offset, None if length is None else offset + length

        def want(pos: int) -> int:
            return READ_CHUNK if end is None else max(0, min(READ_CHUNK, end - pos))

        try:
            # Opening and the first read share one worker-thread hop: a small file (a
            # `.metadata`, most wheels' first megabyte) then costs one hop in all.
            f, first = await to_thread.run_sync(_open_and_read, path, offset, want(offset))
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        self.open_streams += 1
        # One read is kept in flight while the previous chunk is being sent: the copy from the
        # page cache (worker thread) overlaps the socket write (event loop). Measured: about
        # 1.0 -> 1.5 GB/s for a 1 GiB download over loopback.
        fd = f.fileno()

        def read_at(pos: int) -> bytes:
            wanted = want(pos)
            return os.pread(fd, wanted, pos) if wanted > 0 else b""

        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        done.set_result(first)
        pending: asyncio.Future[bytes] | None = done
        try:
            while pending is not None:
                data = await pending
                pending = None
                if not data:
                    break
                position += len(data)
                if end is None or position < end:
                    pending = asyncio.ensure_future(to_thread.run_sync(read_at, position))
                yield data
        finally:
            self.open_streams -= 1
            if pending is not None:
                # The read in flight cannot be interrupted; wait for it before closing the fd.
                pending.cancel()
                await asyncio.wait({pending})
                if not pending.cancelled():
                    pending.exception()  # mark retrieved; the chunk is no longer wanted
            # Closing a file never waits on the disk, and must also work when the generator is
            # finalized without a running loop, so it is done inline rather than in a thread.
            f.close()

    def writer(
        self,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        max_size: int | None = None,
    ) -> FilesystemBlobWriter:
        """Return a new writer; see `BlobWriter` for the commit/discard promise."""
        return FilesystemBlobWriter(
            self, expected_sha256=expected_sha256, expected_size=expected_size, max_size=max_size
        )

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is fine. Raises ValueError for a malformed key."""
        path = self._path_for(key)
        with contextlib.suppress(FileNotFoundError):
            await to_thread.run_sync(os.unlink, path)

    async def url_for(self, key: str, *, expires_seconds: int = 300) -> str | None:
        """Always None: a directory has no URL of its own; the service streams the bytes."""
        self._path_for(key)
        return None

    async def list_blobs(self) -> AsyncIterator[ListedBlob]:
        """Every committed blob under `sha256/`, one top-level directory (1/256 of the store)
        per worker-thread call; anything that is not a well-formed blob key is skipped."""
        base = self.root / "sha256"

        def tops() -> list[str]:
            try:
                return sorted(p.name for p in base.iterdir() if p.is_dir())
            except FileNotFoundError:
                return []

        def listing(top: str) -> list[ListedBlob]:
            found = []
            for dirpath, _dirs, files in os.walk(base / top):
                for name in files:
                    path = Path(dirpath) / name
                    key = path.relative_to(self.root).as_posix()
                    try:
                        sha256_of_key(key)
                        st = path.stat()
                    except (ValueError, FileNotFoundError):
                        continue
                    modified = datetime.fromtimestamp(st.st_mtime, UTC)
                    found.append(ListedBlob(key=key, size=st.st_size, modified=modified))
            return sorted(found, key=lambda b: b.key)

        for top in await to_thread.run_sync(tops):
            for blob in await to_thread.run_sync(listing, top):
                yield blob

    async def local_path(self, key: str) -> str | None:
        """The committed blob's path (blobs are never rewritten in place: a reader of the path
        gets exactly the blob's bytes). Raises `BlobNotFound` when there is none."""
        try:
            path = self._path_for(key)
        except ValueError:
            raise BlobNotFound(key) from None
        try:
            # On the event loop, not in a thread: the server opens this path on the loop next
            # to send it (docs/adr/0007-file-bytes-by-sendfile.md), so a thread here saved no
            # wait, and its two hand-overs were a third of a hosted download's latency (a
            # 500 KB wheel asked anew: 220 -> 150 us, nginx 87).
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        return str(path)

    async def ping(self) -> None:
        """Write, read back and remove a small probe file under `tmp/`; raise
        `BackendUnavailable(part="blobs")` if any step fails."""
        try:
            # Abandonable: a readiness probe that times out (a hung network mount) must return
            # now; the thread only touches its own probe file.
            await to_thread.run_sync(self._probe, abandon_on_cancel=True)
        except OSError as e:
            raise BackendUnavailable(
                f"blob directory {self.root} is not usable: {e}", part="blobs"
            ) from e

    def _probe(self) -> None:
        probe = b"wheelyard ping"
        f, path = self._create_temp()
        try:
            with f:
                f.write(probe)
            if path.read_bytes() != probe:
                raise OSError(f"probe file {path} read back different bytes")
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def list_temp(self) -> list[str]:
        """Names of temp files under `tmp/`: writes in progress or abandoned by a crash."""

        def names() -> list[str]:
            try:
                return sorted(p.name for p in self.temp_dir.iterdir())
            except FileNotFoundError:
                return []

        return await to_thread.run_sync(names)

    async def sweep_temp(self, older_than_seconds: float) -> int:
        """Remove temp files not modified for `older_than_seconds` (crash leftovers); return how
        many were removed. A live writer touches its file on every flush, so a threshold well
        above the slowest expected upload chunk never removes a write in progress."""
        return await to_thread.run_sync(remove_files_older_than, self.temp_dir, older_than_seconds)

    def staging_dir(self) -> Path:
        """The store's `tmp/`: a file written there can be moved in by `adopt` without a copy
        (same filesystem). Such a file counts as a write in progress: the start-up sweep
        removes it if its process died."""
        return self.temp_dir

    async def adopt(self, path: Path, key: str) -> None:
        """Make the complete file at `path` (in `staging_dir()`, its bytes already checked to
        be those of `key` by the caller) the blob `key`: flushed to disk and renamed into
        place, so it is never copied; `path` is gone afterwards. Raises `ValueError` for a
        file elsewhere or a malformed key, `BackendUnavailable` when the disk fails (then
        `path` is left for the caller to remove)."""
        if path.parent != self.temp_dir:
            raise ValueError(f"{path} is not in the staging directory {self.temp_dir}")
        self._path_for(key)  # a malformed key raises ValueError before anything moves

        def move() -> None:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)  # flushes the file's data whichever descriptor wrote it
            finally:
                os.close(fd)
            self._move_into_place(path, key)

        try:
            await to_thread.run_sync(move)
        except OSError as e:
            raise _unavailable(self, e) from e

    async def recover_leftovers(self) -> int:
        """Claim `tmp/` for this process (see `storage.tempdir`): every temp file is removed
        when no other live process uses this store, else those older than STALE_AFTER. Call
        once at start, before this process writes; `close` gives the claim up."""
        if self._claim is None:
            claim: TempDirClaim = await to_thread.run_sync(claim_temp_dir, self.temp_dir)
            self._claim = claim
            return claim.removed
        return self._claim.removed

    async def close(self) -> None:
        """Give up the claim on `tmp/`; every file is closed when its stream or writer ends."""
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    # -- helpers run in worker threads -------------------------------------------------------

    def _create_temp(self) -> tuple[BinaryIO, Path]:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.temp_dir)
        return os.fdopen(fd, "wb"), Path(name)

    def _commit_temp(self, f: BinaryIO, temp: Path, key: str) -> None:
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._move_into_place(temp, key)

    def _move_into_place(self, temp: Path, key: str) -> None:
        final = self._path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        # os.replace is atomic: a concurrent writer of the same bytes just replaces an identical
        # file, and readers holding the old inode keep reading valid bytes.
        os.replace(temp, final)
        _fsync_dir(final.parent)


class FilesystemBlobWriter(VerifyingWriter):
    """One write into a `FilesystemBlobStore`; use with `async with` (see `BlobWriter`): a temp
    file in the store, fsynced and renamed into place on commit."""

    def __init__(
        self,
        store: FilesystemBlobStore,
        *,
        expected_sha256: str | None,
        expected_size: int | None,
        max_size: int | None,
    ) -> None:
        super().__init__(
            expected_sha256=expected_sha256, expected_size=expected_size, max_size=max_size
        )
        self._store = store
        self._file: BinaryIO | None = None
        self._temp: Path | None = None

    @property
    def _started(self) -> bool:
        return self._file is not None

    async def __aenter__(self) -> FilesystemBlobWriter:
        try:
            self._file, self._temp = await to_thread.run_sync(self._store._create_temp)
        except OSError as e:
            raise _unavailable(self._store, e) from e
        return self

    async def _write_out(self, data: bytes | bytearray) -> None:
        assert self._file is not None
        f, h = self._file, self._hash

        def write() -> None:
            h.update(data)  # hashlib releases the GIL on large buffers
            f.write(data)

        try:
            await to_thread.run_sync(write)
        except OSError as e:
            raise _unavailable(self._store, e) from e

    async def _publish(self, key: str) -> None:
        assert self._file is not None and self._temp is not None
        try:
            await to_thread.run_sync(self._store._commit_temp, self._file, self._temp, key)
        except OSError as e:
            raise _unavailable(self._store, e) from e

    async def _discard(self) -> None:
        f, temp = self._file, self._temp

        def discard() -> None:
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
            if temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)

        await to_thread.run_sync(discard)


def _open_and_read(path: Path, offset: int, length: int) -> tuple[BinaryIO, bytes]:
    f = open(path, "rb")  # noqa: SIM115 - the caller owns and closes it
    try:
        return f, os.pread(f.fileno(), length, offset) if length > 0 else b""
    except BaseException:
        f.close()
        raise


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unavailable(store: FilesystemBlobStore, e: OSError) -> BackendUnavailable:
    return BackendUnavailable(f"blob directory {store.root}: {e.strerror or e}", part="blobs")
