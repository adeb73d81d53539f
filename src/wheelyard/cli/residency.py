"""Whether a file's bytes are in the kernel's page cache, so that sending them cannot wait for
the disk.

Linux answers with `cachestat(2)` (Linux 6.5 and later, https://man7.org/linux/man-pages/man2/cachestat.2.html):
how many pages of a range of an open file are cached, in one system call and without touching
them. Python has no wrapper for it, so it is called through the C library's `syscall(2)`.
Where the call does not exist (another system, an older kernel, a sandbox that filters it) the
answer is always "unknown" (False), and callers keep to the path that may wait.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

#: cachestat's number, the same on every Linux architecture but alpha (system calls added
#: since 5.1 share their numbers: include/uapi/asm-generic/unistd.h).
_SYS_CACHESTAT = 451
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [
        ("nr_cache", ctypes.c_uint64),
        ("nr_dirty", ctypes.c_uint64),
        ("nr_writeback", ctypes.c_uint64),
        ("nr_evicted", ctypes.c_uint64),
        ("nr_recently_evicted", ctypes.c_uint64),
    ]


def _load_syscall() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.syscall
    except (OSError, AttributeError):
        return None
    call.restype = ctypes.c_long
    # Asked about no file at all, a kernel that has the call says EBADF, one without ENOSYS.
    span, stat = _Range(0, 1), _Stat()
    if call(_SYS_CACHESTAT, -1, ctypes.byref(span), ctypes.byref(stat), 0) == 0:
        return call
    return call if ctypes.get_errno() == errno.EBADF else None


_syscall = _load_syscall()


def available() -> bool:
    """True when this system answers `cachestat(2)`."""
    return _syscall is not None


def cached(fd: int, offset: int, length: int) -> bool:
    """True when every page holding bytes `offset` to `offset + length` of the open file `fd`
    is in the page cache; False when some are not, or when the system cannot tell."""
    global _syscall
    call = _syscall
    if call is None or length <= 0:
        return False
    span = _Range(offset, length)
    stat = _Stat()
    result = call(  # type: ignore[operator]
        ctypes.c_long(_SYS_CACHESTAT),
        ctypes.c_uint(fd),
        ctypes.byref(span),
        ctypes.byref(stat),
        ctypes.c_uint(0),
    )
    if result != 0:
        if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
            _syscall = None  # not on this kernel (or filtered): never ask again
        return False
    pages = (offset + length - 1) // _PAGE - offset // _PAGE + 1
    return bool(stat.nr_cache >= pages)
