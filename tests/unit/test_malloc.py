"""The allocator settings a server applies at start (in a child interpreter, so that this test
process keeps its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
