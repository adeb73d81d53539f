"""A spool file for one upload: bytes go to a private temp file on disk, hashed as they come.

Uploads are spooled (not held in memory) so memory stays bounded whatever the file size, and
because reading a wheel's METADATA needs random access. Writes are batched and done in a worker
thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import anyio

from wheelyard.shared.errors import TooLarge

BATCH = 1024 * 1024


class Spool:
    """Collects one file's bytes; `sha256`, `blake2_256`, `md5` and `size` once `finish`ed."""

    def __init__(self, directory: Path, max_size: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self.max_size = max_size
        self.size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._sha256 = hashlib.sha256()
        self._blake2 = hashlib.blake2b(digest_size=32)
        self._md5 = hashlib.md5(usedforsecurity=False)

    async def write(self, data: bytes) -> None:
        """Append `data`; raises TooLarge as soon as the file crosses `max_size`."""
        self.size += len(data)
        if self.size > self.max_size:
            raise TooLarge(f"File too large. Limit is {self.max_size} bytes.")
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        await anyio.to_thread.run_sync(self._write_and_hash, chunk)

    def _write_and_hash(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._sha256.update(chunk)
        self._blake2.update(chunk)
        self._md5.update(chunk)

    async def finish(self) -> None:
        """Flush and close the file; the digests are final afterwards."""
        await self._flush()
        await anyio.to_thread.run_sync(self._file.close)

    @property
    def sha256(self) -> str:
        """Hex sha256 of everything written."""
        return self._sha256.hexdigest()

    @property
    def blake2_256(self) -> str:
        """Hex BLAKE2b-256 of everything written."""
        return self._blake2.hexdigest()

    @property
    def md5(self) -> str:
        """Hex MD5 of everything written (only to check a client-supplied md5_digest)."""
        return self._md5.hexdigest()

    def discard(self) -> None:
        """Close and delete the temp file (always call, success or not)."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)
