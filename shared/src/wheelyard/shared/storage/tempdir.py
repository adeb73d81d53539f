"""Local directories of temporary files (upload spools, a filesystem blob store's writes in
progress), and removing what a crash left in them.

Several processes may write into one such directory: split-mode services on one host sharing a
data dir or a `file://` blob store. Each process that uses a directory holds a shared `flock`
on `<dir>.lock` (beside the directory, where no sweep can remove it) for as long as it runs;
the kernel drops the locks of a process that dies, SIGKILL included. At start,
`claim_temp_dir` first asks for that lock exclusively: when it gets it, no live process writes
there, so every file in the directory is a leftover and is removed at once. Otherwise only
files untouched for `stale_after` seconds are (a live writer touches its file with every
write). Then the process keeps a shared lock until `release()`.

flock is advisory and local: on a network filesystem without lock support the exclusive lock
may be granted to several hosts at once, so a shared `file://` blob store must not span hosts
(docs/configuration.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: A temp file untouched for this long belongs to no live writer, even when other processes
#: use its directory: writers touch their file with every chunk, and no chunk takes an hour.
STALE_AFTER = 3600.0


def remove_files_older_than(directory: Path, seconds: float) -> int:
    """Remove the regular files in `directory` (not below) not modified for `seconds`; return
    how many were removed. A missing directory holds nothing. Blocking: call in a thread."""
    cutoff = time.time() - seconds
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # its writer committed or discarded it meanwhile
    return removed


@dataclass
class TempDirClaim:
    """This process's use of a temp directory; `removed` is what the start-up sweep removed."""

    directory: Path
    removed: int
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        """Stop using the directory (drops the shared lock); idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim_temp_dir(directory: Path, *, stale_after: float = STALE_AFTER) -> TempDirClaim:
    """Start using `directory` for temp files: remove what crashed writers left there (every
    file when no other live process uses it, else files older than `stale_after`) and hold a
    shared lock until `release()`. Blocking: call in a thread."""
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory.with_name(directory.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        removed = remove_files_older_than(directory, 0.0 if alone else stale_after)
        # Downgrade (or wait while a peer that is alone sweeps): from now on we are a user.
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    if removed:
        log.warning("removed %d temporary file(s) left in %s by a crash", removed, directory)
    return TempDirClaim(directory, removed, fd)
