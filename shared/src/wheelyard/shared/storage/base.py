"""The BlobStore protocol: content-addressed, streamed, bounded-memory file storage.

Every backend (filesystem, S3) passes the same contract suite in `tests/contract/test_blobstore.py`.
Keys are opaque strings chosen by the store (`sha256/ab/cd/<hex>`); callers never build paths
from user input.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

#: Chunk size used when reading and writing blobs: large enough for throughput, small enough
#: that memory stays bounded whatever the blob size.
CHUNK_SIZE = 1024 * 1024
#: The largest chunk `open()` yields: reads may use bigger chunks than writes (fewer thread hops
#: and socket writes per byte on the download path), still bounded.
MAX_READ_CHUNK = 4 * CHUNK_SIZE


def blob_key_for(sha256_hex: str) -> str:
    """Return the content-addressed key of the blob whose sha256 is `sha256_hex`."""
    h = sha256_hex.lower()
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
    return f"sha256/{h[:2]}/{h[2:4]}/{h}"


def sha256_of_key(key: str) -> str:
    """Return the hex sha256 named by a blob key; raise `ValueError` unless `key` is exactly
    what `blob_key_for` returns (so no caller-supplied string can address anything else)."""
    # fullmatch, not match + `$`: `$` would also accept a trailing newline.
    m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
    if m is None or m["a"] != m["hex"][:2] or m["b"] != m["hex"][2:4]:
        raise ValueError(f"not a blob key: {key!r}")
    return m["hex"]


_KEY_RE = re.compile(r"sha256/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/(?P<hex>[0-9a-f]{64})")


@dataclass(frozen=True)
class BlobInfo:
    """What a store knows about one committed blob."""

    key: str
    size: int


@dataclass(frozen=True)
class ListedBlob:
    """One committed blob as a listing sees it: its key, size and when it was last written
    (garbage collection's measure of age)."""

    key: str
    size: int
    modified: datetime  # timezone-aware UTC


@dataclass(frozen=True)
class WrittenBlob:
    """The result of a committed write: where it is, how big, and its digest."""

    key: str
    size: int
    sha256: str


class BlobNotFound(KeyError):
    """Raised by `open` when no committed blob has that key."""


class BlobWriter(Protocol):
    """An open write. Feed it chunks; it commits on clean exit and discards on error.

    Nothing written is visible under any key until the `async with` block exits without an
    exception and the digest checks pass. Afterwards `result` holds the committed blob.
    `write` must be awaited one call at a time (it is not safe to call concurrently).
    """

    result: WrittenBlob | None

    async def write(self, chunk: bytes) -> None:
        """Append `chunk`; raises `TooLarge` once `max_size` is crossed."""
        ...

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written so far."""
        ...

    async def __aenter__(self) -> BlobWriter: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage.

    Promises:
    - `writer()` streams: memory stays O(chunk) whatever the size. On clean exit the blob is
      committed under `blob_key_for(sha256)`; a concurrent writer of the same bytes is harmless
      (same key, same bytes). On error or cancellation nothing becomes visible and the
      temporary data is removed.
    - If `expected_sha256` is given and the bytes differ, exit raises `IntegrityFailure` and
      nothing is committed; if `expected_size` is given likewise.
    - `open()` yields chunks of at most MAX_READ_CHUNK from `offset` (and at most `length` bytes;
      nothing when `offset` is at or past the end); raises `BlobNotFound`. Closing the iterator
      early (`aclose()`) releases its file or connection at once.
    - Keys are only ever strings `blob_key_for` returns: any other string names no blob
      (`stat` -> None, `open` -> `BlobNotFound`; `delete` and `url_for` raise `ValueError`),
      so no caller-supplied key can reach outside the store.
    - An unreachable or failing backend raises `BackendUnavailable(part="blobs")`.
    - SDK or disk calls never block the event loop.
    """

    async def stat(self, key: str) -> BlobInfo | None:
        """Return the blob's info, or None when no committed blob has that key."""
        ...

    def open(self, key: str, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream the blob's bytes from `offset`; raises `BlobNotFound` on first iteration."""
        ...

    def writer(
        self,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        max_size: int | None = None,
    ) -> BlobWriter:
        """Return a new writer (use it with `async with`)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""
        ...

    async def url_for(self, key: str, *, expires_seconds: int = 300) -> str | None:
        """A presigned URL clients can GET without credentials, or None if the backend has none."""
        ...

    def list_blobs(self) -> AsyncIterator[ListedBlob]:
        """Every committed blob (never a write in progress nor anything that is not a blob
        key), with its size and last write time, fetched a prefix at a time so memory stays
        bounded whatever the store holds. Blobs written or deleted during the listing may or
        may not appear."""
        ...

    async def local_path(self, key: str) -> str | None:
        """The path of the committed blob on this machine's filesystem, for a server to send
        from directly (zero-copy); None when the backend keeps no local files (then nothing
        is checked). Raises `BlobNotFound` when a local blob does not exist."""
        ...

    def staging_dir(self) -> Path | None:
        """A local directory where a file can be written and then made a blob by `adopt`,
        without copying its bytes; None when the store keeps no local files."""
        ...

    async def adopt(self, path: Path, key: str) -> None:
        """Make the complete file at `path` (in `staging_dir()`; the caller has checked that
        its bytes are those of `key`) the blob `key`, durably; `path` is gone afterwards.
        Raises `ValueError` for a file outside `staging_dir()` (always, when that is None) or
        a malformed key."""
        ...

    async def ping(self) -> None:
        """Raise `BackendUnavailable` unless the store can be read and written right now."""
        ...

    async def recover_leftovers(self) -> int:
        """Clean up what writes interrupted by a crash left behind; call once at start, before
        this process writes. Returns how many leftovers were removed before returning (work
        the store does in the background afterwards is logged). Never removes a live write of
        another process; never raises for an unreachable backend (it logs)."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...
