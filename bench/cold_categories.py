"""Server CPU per cold proxy request, one kind at a time (a script, not a test).

A fresh Wheelyard proxy (started as `bench/cold_bench.py` starts it: `uv run wheelyard serve`,
embedded backends) in front of nginx serving the team benchmark's upstream tree is asked, with
`--parallel` clients, for the project page of every locked project, then every wheel's
`.metadata`, then every wheel, each first cold and then again warm; for each step it prints the
wall time and the server process's CPU time (user + system, from /proc), in all and per
request. Where `cold_bench.py` times whole installs, this says which kind of cold request the
CPU goes to.

    uv run python bench/cold_categories.py [--parallel 8] [--upstream /tmp/upstream]

Needs nginx and the upstream tree of ../shared/bench/make_upstream.py (see cold_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cold_bench import SHARED_BENCH, Proxy, children, free_port, start_nginx, tmpfs, wait_upstream

CLK = os.sysconf("SC_CLK_TCK")
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (local URL)
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 (local URL)
        return bytes(response.read())


def step(label: str, pid: int, call: Callable[[str], object], items: list[str], parallel: int):
    """Ask for every item with `parallel` clients; print wall and server CPU time."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(call, items))
    wall, used = time.perf_counter() - started, cpu_seconds(pid) - cpu
    each = used / len(items) * 1000
    print(
        f"  {label:14} {len(items):4} requests  {wall:6.2f} s  CPU {used:6.2f} s = {each:5.1f} ms"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    parser.add_argument("--lock", type=Path, default=SHARED_BENCH / "requirements.lock")
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    wait_upstream(args.upstream, 60)
    work = Path(tempfile.mkdtemp(prefix="cold-categories-", dir=tmpfs()))
    nginx, upstream = start_nginx(args.upstream, work)
    proxy = Proxy(upstream, Path(tempfile.mkdtemp(prefix="cold-categories-")) / "data", free_port())
    try:
        proxy.ready()
        (pid,) = children().get(proxy.proc.pid, [proxy.proc.pid])[:1]
        names = [line.split("==")[0].strip() for line in args.lock.open() if "==" in line]
        wheels = {line.split("\t")[0] for line in (args.upstream / "MANIFEST.tsv").open()}
        index = proxy.index
        print(f"{len(names)} projects, {args.parallel} clients, server pid {pid}")

        def page(name: str) -> dict:
            return json.loads(get(f"{index}{name}/", JSON))

        pages = step("pages cold", pid, page, names, args.parallel)
        files = [
            urllib.parse.urljoin(f"{index}{name}/", f["url"])
            for name, listed in zip(names, pages, strict=True)
            for f in listed["files"]
            if f["filename"] in wheels
        ]
        step("pages warm", pid, page, names, args.parallel)
        for kind, suffix in ((".metadata", ".metadata"), ("wheels", "")):

            def fetch(url: str, suffix: str = suffix) -> int:
                return len(get(url + suffix))

            step(f"{kind} cold", pid, fetch, files, args.parallel)
            step(f"{kind} warm", pid, fetch, files, args.parallel)
            step(f"{kind} warm", pid, fetch, files, args.parallel)
    finally:
        proxy.stop()
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
