"""Benchmark: memory and time of the proxy on very large upstream project pages (a script, not
a test).

A local upstream serves --pages distinct PEP 691 JSON pages of --files files each (PyPI has
pages of tens of MB with 100,000 files). An embedded `wheelyard serve` proxies them. For each
page, in turn, the script asks the proxy for it cold (fetch, parse, store, render), then as HTML
(a second render from storage), then warm (the rendered page from the cache), and reads the
server's resident memory after each page. The peer in the same run is the upstream itself:
the time to GET the same page straight from it.

Printed: the server's RSS when idle, after the first page, after the last, the growth from
first to last, its peak (VmHWM), and per page the times (cold JSON and the server's CPU seconds
for it, HTML, warm JSON, direct). On a shared machine the CPU seconds are the steadier figure.

    uv run python bench/large_pages.py [--pages 4] [--files 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from wheelyard.testing.server import ServerProcess
from wheelyard.testing.upstream import LocalUpstream

JSON_V1 = "application/vnd.pypi.simple.v1+json"
MiB = 1024 * 1024


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid`, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (the machine may be shared: wall time is not
    the server's own cost)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_get(client: httpx.Client, url: str, accept: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url, headers={"Accept": accept})
    return time.perf_counter() - started, response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wy-large-") as tmp:
        root = Path(tmp)
        with LocalUpstream(root / "upstream") as upstream:
            names = [f"huge-{i}" for i in range(args.pages)]
            for name in names:
                upstream.serve_large_page(name, args.files)
            sizes = [len(upstream.raw_page(name)) for name in names]
            server = ServerProcess(
                root / "server",
                {
                    "WHEELYARD_PYPI_PROXY": upstream.simple_url,
                    "WHEELYARD_PYPI_PROXY_TIMEOUT": "120",
                },
            ).start()
            try:
                assert server.proc is not None
                pid = server.proc.pid
                proxy = f"{server.url}/repositories/default/pypi/simple"
                with httpx.Client(timeout=600) as client:
                    client.get(f"{server.url}/healthz")
                    idle, _ = memory(pid)
                    rows = []
                    after: list[int] = []
                    for name in names:
                        cpu_before = cpu_seconds(pid)
                        cold, response = timed_get(client, f"{proxy}/{name}/", JSON_V1)
                        cold_cpu = cpu_seconds(pid) - cpu_before
                        response.raise_for_status()
                        listed = len(response.json()["files"])
                        if listed != args.files:
                            raise SystemExit(f"{name}: {listed} files listed, not {args.files}")
                        html, response = timed_get(client, f"{proxy}/{name}/", "text/html")
                        response.raise_for_status()
                        warm, _ = timed_get(client, f"{proxy}/{name}/", JSON_V1)
                        direct, _ = timed_get(client, f"{upstream.simple_url}{name}/", JSON_V1)
                        rss, _ = memory(pid)
                        after.append(rss)
                        rows.append((name, cold, cold_cpu, html, warm, direct, rss))
                    _, peak = memory(pid)
            finally:
                server.stop()
    print(f"{args.pages} pages of {args.files} files, {statistics.mean(sizes) / MiB:.1f} MiB each")
    print(
        f"{'page':<10}{'cold json':>11}{'(cpu)':>8}{'html':>8}{'warm':>8}{'direct':>8}"
        f"{'ratio':>7}{'RSS':>9}"
    )
    for name, cold, cold_cpu, html, warm, direct, rss in rows:
        print(
            f"{name:<10}{cold:>10.2f}s{cold_cpu:>7.2f}s{html:>7.2f}s{warm:>7.2f}s{direct:>7.2f}s"
            f"{cold / direct:>6.1f}x{rss / MiB:>7.0f}MB"
        )
    print(f"idle RSS {idle / MiB:.0f} MB; after page 1 {after[0] / MiB:.0f} MB; ", end="")
    print(f"after page {len(after)} {after[-1] / MiB:.0f} MB; peak (VmHWM) {peak / MiB:.0f} MB")
    growth = after[-1] - after[0]
    print(
        f"growth first->last page: {growth / MiB:+.0f} MB ({after[-1] / after[0]:.2f}x); "
        f"cold page vs direct upstream GET: {statistics.median(r[1] / r[5] for r in rows):.1f}x"
    )


if __name__ == "__main__":
    main()
