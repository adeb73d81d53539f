"""The C allocator's settings for a long-running server process (glibc only).

Measured with a cold `uv pip install` of 102 wheels through the proxy: with glibc's defaults
the server's resident memory rose from 113 to 184 MiB and stayed there, and with the two
settings below it peaked at 164 and settled at 139 MiB, at no measured cost in speed.

- `M_MMAP_THRESHOLD` fixed at 128 KiB (glibc's initial value): by default glibc raises the
  threshold each time a large block is freed (up to 32 MiB), after which the 64 KiB - 1 MiB
  buffers of streamed files come from the heap, where freed memory is rarely returned to the
  system. Fixed, such buffers are mapped and unmapped, and leave nothing behind.
- `M_ARENA_MAX` 2: every thread that allocates gets an arena of its own by default (up to 8
  per core); the worker threads that read and write files then each keep their own free lists.

A setting given in the environment (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_ARENA_MAX`, see
mallopt(3)) is left as the operator chose it.
"""

from __future__ import annotations

import ctypes
import os
import sys

# From glibc's <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: (mallopt parameter, its name, the value we set, the environment variable that overrides it)
SETTINGS = (
    (M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD", 128 * 1024, "MALLOC_MMAP_THRESHOLD_"),
    (M_ARENA_MAX, "M_ARENA_MAX", 2, "MALLOC_ARENA_MAX"),
)


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
