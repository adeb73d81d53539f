"""The memory floors of an embedded server's process tree (a script that prints figures, not a
test): what the `uv run` wrapper keeps resident, and what each layer of imports adds to a bare
interpreter before any app object exists. docs/performance.md ("The floors") quotes it.

- wrapper: `uv run --directory <checkout> python -c <sleep>`, as the team benchmark starts
  `wheelyard serve`, with uv's options that skip work before spawning (`--frozen`: no lock
  check; `--no-sync`: no lock and no environment check); the wrapper's RSS, its file-backed
  part (the pages of the `uv` binary) and its heap, from /proc/<pid>/status.
- imports: one interpreter importing the layers below one after the other, RSS after each.

    uv run python bench/memory_floor.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]

#: Imported in this order; the last layers are the registry's own modules.
LAYERS = (
    "sqlite3",
    "ssl",
    "pydantic",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlmodel",
    "fastapi",
    "httpx",
    "uvicorn",
    "uvloop",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "jwt",
    "argon2",
    "typer",
    "prometheus_client",
    "jinja2",
    "pydantic_settings",
    "wheelyard.gateway.app",
    "wheelyard.gateway.embedded",
    "wheelyard.cli.main",
)

_STAGES = """
import importlib, sys
def rss():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS')) / 1024
print(f"{'bare interpreter':52s} {rss():6.1f} MiB")
for name in sys.argv[1:]:
    before = rss()
    importlib.import_module(name)
    print(f"{name:52s} {rss():6.1f} MiB  (+{rss() - before:4.1f})")
"""


def _status(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0])
    return fields


def wrapper(options: list[str]) -> dict[str, int]:
    """The `uv run` process's memory (kB) while its child sleeps."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is required")
    command = [uv, "run", *options, "--directory", str(CHECKOUT), "python", "-c"]
    proc = subprocess.Popen([*command, "import time; time.sleep(6)"])
    try:
        time.sleep(4)  # the child has started: uv is waiting for it
        return _status(proc.pid)
    finally:
        proc.wait()


def main() -> None:
    print("the `uv run` wrapper while the command runs (MiB)")
    print(f"  {'options':14s} {'RSS':>6s} {'file':>6s} {'heap':>6s}")
    for options in ([], ["--frozen"], ["--no-sync"]):
        got = wrapper(options)
        print(
            f"  {' '.join(options) or '(none)':14s} {got['VmRSS'] / 1024:6.1f} "
            f"{got['RssFile'] / 1024:6.1f} {got['RssAnon'] / 1024:6.1f}"
        )
    print("\nimports, one layer after the other (RSS of one interpreter)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEELYARD_")}
    subprocess.run([sys.executable, "-c", _STAGES, *LAYERS], env=env, check=True)


if __name__ == "__main__":
    main()
