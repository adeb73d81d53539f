"""Cold installs (or resolutions) through fresh proxies of two checkouts, alternating (a
script, not a test): an A/B of a change to the cold path.

Each round starts a fresh proxy of each checkout the way `cold_bench.py` does (its `Proxy`,
from that checkout's own `bench/cold_bench.py`), in alternating order, and times one cold
`uv pip install --no-cache` (or `uv pip compile --no-cache` with `--resolve`) of the team
benchmark's requirements through it, with the server's CPU (user + system of its process
tree, from /proc) over that install; with installs, nginx is timed too each round. Medians
are printed per checkout.

    uv run python bench/cold_ab.py [--rounds 3] [--resolve] <checkout-A> <checkout-B>

A checkout is a directory holding a Wheelyard tree (`git worktree add /tmp/before <commit>`,
then `uv sync` there). Needs nginx, uv and the upstream tree (see cold_bench.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from cold_bench import SHARED_BENCH, children, clean_env, install, start_nginx, tmpfs

CLK = os.sysconf("SC_CLK_TCK")


def harness_of(checkout: Path) -> ModuleType:
    """`bench/cold_bench.py` of `checkout` (its `Proxy` starts that checkout's server)."""
    spec = importlib.util.spec_from_file_location(
        f"cold_bench_{abs(hash(checkout))}", checkout / "bench" / "cold_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree_cpu(root: int) -> float:
    """User + system CPU seconds of process `root` and its descendants so far."""
    kids = children()
    stack, total = [root], 0.0
    while stack:
        pid = stack.pop()
        stack += kids.get(pid, [])
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", type=Path, nargs=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resolve", action="store_true", help="uv pip compile, not install")
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    args = parser.parse_args()
    requirements = SHARED_BENCH / "requirements.txt"
    checkouts = [c.resolve() for c in args.checkouts]
    harnesses = {c: harness_of(c) for c in checkouts}
    state = Path(tempfile.mkdtemp(prefix="cold-ab-"))
    work = Path(tempfile.mkdtemp(prefix="cold-ab-work-", dir=tmpfs()))
    env = clean_env(work)
    nginx, upstream = start_nginx(args.upstream, state)
    subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(work / "v")], env=env, check=True)
    results: dict[Path, list[tuple[float, float]]] = {c: [] for c in checkouts}
    try:
        for round_ in range(args.rounds):
            for checkout in checkouts if round_ % 2 == 0 else checkouts[::-1]:
                harness = harnesses[checkout]
                proxy = harness.Proxy(
                    upstream, state / f"data-{round_}-{checkout.name}", harness.free_port()
                )
                try:
                    proxy.ready()
                    time.sleep(1.0)
                    cpu = tree_cpu(proxy.proc.pid)
                    started = time.perf_counter()
                    if args.resolve:
                        subprocess.run(
                            [
                                "uv",
                                "pip",
                                "compile",
                                "--no-cache",
                                "--index-url",
                                proxy.index,
                                "-p",
                                str(work / "v" / "bin" / "python"),
                                str(requirements),
                            ],
                            env=env,
                            check=True,
                            capture_output=True,
                            timeout=600,
                        )
                        elapsed = time.perf_counter() - started
                    else:
                        elapsed = install(proxy.index, requirements, work, env)
                    cpu = tree_cpu(proxy.proc.pid) - cpu
                finally:
                    proxy.stop()
                results[checkout].append((elapsed, cpu))
                print(
                    f"round {round_ + 1}: {checkout}: {elapsed:.2f} s, server CPU {cpu:.2f} s",
                    flush=True,
                )
            if not args.resolve:
                print(
                    f"round {round_ + 1}: nginx {install(upstream, requirements, work, env):.2f} s",
                    flush=True,
                )
    finally:
        nginx.terminate()
        nginx.wait(10)
    print_medians(results)


def print_medians(results: Mapping[Any, list[tuple[float, float]]]) -> None:
    """Each entry's median wall time and server CPU (left out where none was measured)."""
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{name}: median {wall:.2f} s" + (f", server CPU {cpu:.2f} s" if cpu else ""))


if __name__ == "__main__":
    main()
