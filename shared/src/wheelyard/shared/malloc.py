"""The C allocator's settings for a long-running server process (glibc only).

Every thread that allocates gets a malloc arena of its own by default (up to 8 per core), and
each arena keeps what was freed in it. The event loop's file I/O runs in worker threads (up to
40), so after a burst of downloads the process keeps one arena of freed stream buffers per
thread. Measured with a cold `uv pip install` of 102 wheels through the proxy: the process went
from 113 to 184 MiB and stayed there; with the arenas capped at 2, to 161 MiB, at no measured
cost in speed (`M_ARENA_MAX`, mallopt(3)).

Not set: a fixed `M_MMAP_THRESHOLD` (128 KiB) returned more (139 MiB after the same install),
but then every 1 MiB read buffer is a fresh mapping whose pages the kernel zeroes on first
touch: reading a file in 1 MiB steps ran at a quarter of the speed.

A setting given in the environment (`MALLOC_ARENA_MAX`) is left as the operator chose it.

What is freed in the middle of the heap stays resident: glibc gives pages back to the kernel
only from the top of a heap, and a burst of requests leaves its freed buffers scattered below
live objects. Measured the same way: after the cold install the process held 177 MiB, and
`malloc_trim(0)` (which hands every whole free page back, wherever it lies) brought it to 132
MiB at once. A server therefore keeps a thread that does that whenever 1 MiB more lies free
in the allocator than after the last time (`FreePageReturner`); at rest, or while buffers are
reused at a steady size, it does nothing but read the allocator's totals four times a second.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable

# From glibc's <malloc.h>.
M_ARENA_MAX = -8

#: (mallopt parameter, its name, the value we set, the environment variable that overrides it)
SETTINGS = ((M_ARENA_MAX, "M_ARENA_MAX", 2, "MALLOC_ARENA_MAX"),)


def tune_malloc() -> dict[str, int]:
    """Apply the settings above (call once, before the server starts its threads); returns
    what was set, by name. Does nothing off Linux or without glibc's `mallopt`."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied: dict[str, int] = {}
    for parameter, name, value, variable in SETTINGS:
        if variable in os.environ:
            continue
        if mallopt(parameter, value) == 1:
            applied[name] = value
    return applied


#: How often the returner looks at the allocator's free memory (seconds), and how much must have
#: been freed since the last return (or since the free memory was lowest after it) before freed
#: pages are handed back (bytes). 1 MiB: after start-up that returns 4 MiB that a 4 MiB
#: threshold left resident; pages handed back are zeroed again by the kernel when reused, which
#: at most four times a second costs well under a millisecond.
RETURN_INTERVAL = 0.25
RETURN_GROWTH = 1 * 2**20

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def anonymous_bytes() -> int:
    """The process's resident memory that is not file-backed (its heaps, stacks and mappings),
    from /proc/self/statm; 0 where that file does not exist."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            fields = statm.read().split()
    except OSError:
        return 0
    return (int(fields[1]) - int(fields[2])) * _PAGE


class _MallInfo2(ctypes.Structure):
    # glibc's `struct mallinfo2` (<malloc.h>, glibc 2.33 and later).
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> tuple[Callable[[], object], Callable[[], int]] | None:
    """glibc's `malloc_trim(0)` and the free bytes its arenas hold (`mallinfo2().fordblks`)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        trim, info = libc.malloc_trim, libc.mallinfo2
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    info.argtypes = []
    info.restype = _MallInfo2
    return (lambda: trim(0)), (lambda: int(info().fordblks))


class FreePageReturner:
    """Hands freed heap pages back to the kernel whenever `growth` more bytes lie free in the
    allocator than at the lowest point since the last return; `step` is one look, `start` runs
    it every `interval` seconds on a daemon thread. Live objects are never touched: only whole
    pages of free chunks are released (glibc's `malloc_trim(0)`); `free_bytes` measures what the
    allocator holds free (released or not)."""

    def __init__(
        self,
        *,
        release: Callable[[], object],
        free_bytes: Callable[[], int],
        interval: float = RETURN_INTERVAL,
        growth: int = RETURN_GROWTH,
    ) -> None:
        self.interval = interval
        self.growth = growth
        self.returns = 0
        self._release = release
        self._free_bytes = free_bytes
        self._low = free_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="malloc-return", daemon=True)

    def step(self) -> bool:
        """Look once; True when freed pages were handed back."""
        now = self._free_bytes()
        if now < self._low:
            self._low = now  # free memory was reused (its pages are resident again)
            return False
        if now - self._low < self.growth:
            return False
        self._release()
        self.returns += 1
        self._low = self._free_bytes()
        return True

    def start(self) -> FreePageReturner:
        """Run `step` every `interval` seconds until `stop` (or the process ends)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread (it finishes the step under way)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()


def keep_returning_free_pages() -> FreePageReturner | None:
    """Start a `FreePageReturner` for this server process (call once, after `tune_malloc`);
    None off Linux or without glibc's `malloc_trim` and `mallinfo2`."""
    glibc = _glibc()
    if glibc is None:
        return None
    release, free_bytes = glibc
    return FreePageReturner(release=release, free_bytes=free_bytes).start()
