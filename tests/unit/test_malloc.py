"""The allocator settings a server applies at start (in a child interpreter, so that this test
process keeps its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from wheelyard.shared.malloc import FreePageReturner

_APPLY = (
    "import json; from wheelyard.shared.malloc import tune_malloc; print(json.dumps(tune_malloc()))"
)


def _applied(**env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _APPLY], env=clean | env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


# glibc's mallopt exists on Linux only; elsewhere nothing is set.
LINUX = sys.platform.startswith("linux")


def test_a_server_caps_the_malloc_arenas() -> None:
    assert _applied() == ({"M_ARENA_MAX": 2} if LINUX else {})


def test_an_operators_setting_in_the_environment_is_left_alone() -> None:
    assert _applied(MALLOC_ARENA_MAX="4") == {}


MiB = 2**20


class _Allocator:
    """A stand-in for glibc: the bytes it holds free, and its release of their pages."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.released = 0

    def free_bytes(self) -> int:
        return self.free

    def release(self) -> None:
        self.released += 1  # pages go back; the chunks stay free (glibc's count is unchanged)


def _returner(allocator: _Allocator) -> FreePageReturner:
    return FreePageReturner(
        growth=4 * MiB, release=allocator.release, free_bytes=allocator.free_bytes
    )


def test_freed_pages_go_back_once_enough_was_freed() -> None:
    allocator = _Allocator(10 * MiB)
    returner = _returner(allocator)
    allocator.free += 3 * MiB
    assert not returner.step()  # under the threshold: nothing to do
    allocator.free += 1 * MiB
    assert returner.step()
    assert allocator.released == 1
    assert not returner.step()  # nothing freed since: the same pages are not released again


def test_what_was_freed_counts_from_the_lowest_point_since_the_last_return() -> None:
    allocator = _Allocator(10 * MiB)
    returner = _returner(allocator)
    allocator.free -= 8 * MiB  # free chunks were reused: their pages are resident again
    assert not returner.step()
    allocator.free += 4 * MiB  # and freed again
    assert returner.step()
    assert allocator.released == 1


_BURST = """
import ctypes, time
from wheelyard.shared.malloc import anonymous_bytes, keep_returning_free_pages, tune_malloc
tune_malloc()
returner = keep_returning_free_pages()
before = anonymous_bytes()
blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(1600)]
time.sleep(0.6)
grown = anonymous_bytes() - before  # measured before the frees: the returner may run any time
del blocks[:-1:2]  # free every other block, keep the last one (the top of the heap)
time.sleep(0.6)
print(grown // 2**20, (anonymous_bytes() - before) // 2**20, returner and returner.returns)
"""


def test_a_server_process_hands_back_what_a_burst_left_behind() -> None:
    # In a child interpreter: 100 MiB of 64 KiB blocks, every other one freed. glibc keeps
    # those (live blocks lie above them); the returner's thread hands their pages back.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _BURST], env=clean, capture_output=True, text=True, check=True
    )
    grown, left, returns = (int(x) if x != "None" else None for x in done.stdout.split())
    if not LINUX:
        assert returns is None  # no returner without glibc
        return
    assert grown is not None and left is not None and returns is not None
    assert grown >= 90  # the 1,600 blocks were resident
    assert returns >= 1
    assert left <= grown - 40  # the freed half went back
