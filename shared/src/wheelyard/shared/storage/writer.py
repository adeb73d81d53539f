"""What every backend's writer shares: batching, the size limit, digest checks, and the
commit-or-discard promise of `BlobWriter`.

A backend subclasses `VerifyingWriter` and supplies how to start (`__aenter__`), how to write a
batch (hashing it into `self._hash` on the way), how to publish the verified bytes under their
content-addressed key, and how to throw everything away.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from types import TracebackType

import anyio

from wheelyard.shared.errors import IntegrityFailure, TooLarge
from wheelyard.shared.storage.base import CHUNK_SIZE, WrittenBlob, blob_key_for


class VerifyingWriter(ABC):
    """A `BlobWriter` skeleton. Small chunks are coalesced up to CHUNK_SIZE before each
    `_write_out`, so memory stays O(CHUNK_SIZE) and trips to worker threads stay few; the
    size and sha256 are checked before `_publish`, so a mismatch never becomes visible.
    `write` must not be called concurrently."""

    def __init__(
        self, *, expected_sha256: str | None, expected_size: int | None, max_size: int | None
    ) -> None:
        self.result: WrittenBlob | None = None
        self._expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        self._expected_size = expected_size
        self._max_size = max_size
        self._hash = hashlib.sha256()
        self._size = 0
        self._pending = bytearray()
        self._done = False

    # -- what a backend supplies -------------------------------------------------------------

    @property
    @abstractmethod
    def _started(self) -> bool:
        """True once `__aenter__` has run."""

    @abstractmethod
    async def _write_out(self, data: bytes | bytearray) -> None:
        """Hash `data` into `self._hash` and store it after what came before."""

    @abstractmethod
    async def _publish(self, key: str) -> None:
        """Make the verified bytes visible under `key`."""

    @abstractmethod
    async def _discard(self) -> None:
        """Remove everything written; leave nothing visible."""

    # -- shared ---------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written so far."""
        h = self._hash.copy()
        h.update(self._pending)
        return h.hexdigest()

    async def write(self, chunk: bytes) -> None:
        """Append `chunk`; raises `TooLarge` (and writes nothing of it) once `max_size` would be
        crossed."""
        if not self._started or self._done:
            raise RuntimeError("write() outside `async with writer:`")
        if not chunk:
            return
        if self._max_size is not None and self._size + len(chunk) > self._max_size:
            raise TooLarge(f"the file is larger than the limit of {self._max_size} bytes")
        self._size += len(chunk)
        if not self._pending and len(chunk) >= CHUNK_SIZE:
            await self._write_out(chunk)  # already big: skip the copy into the buffer
            return
        self._pending += chunk
        if len(self._pending) >= CHUNK_SIZE:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, bytearray()
            await self._write_out(data)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done or not self._started:
            return
        try:
            if exc_type is None:
                await self._commit()
                return
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._end_discarded()
            raise
        with anyio.CancelScope(shield=True):
            await self._end_discarded()

    async def _commit(self) -> None:
        await self._flush()
        digest = self._hash.hexdigest()
        # Checked before publishing: a mismatch is discarded, never made visible.
        if self._expected_size is not None and self._size != self._expected_size:
            raise IntegrityFailure(
                f"expected {self._expected_size} bytes, received {self._size} bytes"
            )
        if self._expected_sha256 is not None and digest != self._expected_sha256:
            raise IntegrityFailure(f"expected sha256 {self._expected_sha256}, received {digest}")
        key = blob_key_for(digest)
        await self._publish(key)
        self._done = True
        self.result = WrittenBlob(key=key, size=self._size, sha256=digest)

    async def _end_discarded(self) -> None:
        self._done = True
        self._pending = bytearray()
        await self._discard()
