"""Benchmark of the web interface's project page (a script that prints figures, not a test).

Starts an embedded Wheelyard (SQLite, files on disk, memory cache) in a temp dir and uploads
two projects of 2,000 files each, every release with a 20 KB Markdown README:
- `manyversions`: 2,000 versions of one wheel each (the page lists 2,000 versions);
- `manyfiles`: one version with 2,000 wheels (the page lists 2,000 files).
Then it times sequential requests (after a warm-up) of each project page, a version page,
and, as peers measured in the same run, the PyPI JSON API and the simple page of the same
project. Two figures per page: the server's CPU time per request (user + system, of the
server's process tree, averaged over the run: its own cost, whatever else the machine is
doing), and the loopback round trip the client sees (wall time, which includes waiting for
a CPU on a busy machine).

Usage:
    uv run python bench/ui_bench.py [--files 2000] [--requests 40] [--keep DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from wheelyard.testing.dist_factory import make_wheel, metadata_text
from wheelyard.testing.server import ServerProcess

ADMIN = ("admin", "bench-password")
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
README = "\n\n".join(
    f"## Section {i}\n\nSome text about the project, with `code` and a [link](https://example.com/{i}).\n\n"
    f"```python\nprint({i})\n```"
    for i in range(150)
)


def _wheel(directory: Path, name: str, version: str, tag: str) -> Path:
    metadata = metadata_text(
        name,
        version,
        summary="A project with very many files",
        requires_dist=("httpx>=0.27",),
        extra_headers=[("Description-Content-Type", "text/markdown")],
        description=README,
    )
    return make_wheel(directory, name, version, tag=tag, metadata=metadata)


def fill(url: str, work: Path, files: int) -> None:
    dists = work / "dists"
    dists.mkdir()
    paths = [
        _wheel(dists, "manyversions", f"{i // 100}.{i % 100}.0", "py3-none-any")
        for i in range(files)
    ]
    paths += [
        _wheel(dists, "manyfiles", "1.0.0", f"cp311-cp311-manylinux_2_{i}_x86_64")
        for i in range(files)
    ]
    started = time.monotonic()

    def upload(path: Path) -> None:
        name, version = path.name.split("-")[:2]
        response = client.put(
            f"{url}/repositories/default/local/{name}/{version}/{path.name}",
            content=path.read_bytes(),
            auth=ADMIN,
        )
        response.raise_for_status()

    with httpx.Client(timeout=120) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, paths))
    print(f"uploaded {len(paths)} wheels in {time.monotonic() - started:.0f}s")


def cpu_seconds(server: psutil.Process) -> float:
    """User + system CPU time of the server's process tree so far."""
    total = 0.0
    for proc in [server, *server.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def timed(
    client: httpx.Client, server: psutil.Process, url: str, headers: dict[str, str], count: int
) -> tuple[list[float], float]:
    """(wall milliseconds of each request, server CPU milliseconds per request)."""
    for _ in range(5):  # warm-up: templates compiled, README rendered once and cached
        client.get(url, headers=headers).raise_for_status()
    times = []
    cpu = cpu_seconds(server)
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times, (cpu_seconds(server) - cpu) * 1000 / count


def report(label: str, times: list[float], cpu: float, size: int) -> float:
    median = statistics.median(times)
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    print(
        f"{label:<42} server CPU {cpu:6.1f} ms   wall median {median:6.1f} ms"
        f"   p95 {p95:6.1f} ms   {size / 1024:5.0f} KiB"
    )
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="reuse (or fill once) this work directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        filled = (work / "dists").exists()
        server = ServerProcess(work / "data", {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1]}).start()
        try:
            if not filled:
                fill(server.url, work, args.files)
            base = server.url
            ui = f"{base}/ui/repositories/default/local/projects"
            json_api = f"{base}/repositories/default/local/pypi"
            simple = f"{base}/repositories/default/local/simple"
            pages = [
                ("UI project page, 2,000 versions", f"{ui}/manyversions/", BROWSER),
                ("UI version page, 2,000 versions", f"{ui}/manyversions/0.5.0/", BROWSER),
                ("UI project page, 2,000 files", f"{ui}/manyfiles/", BROWSER),
                ("peer: PyPI JSON API, 2,000 versions", f"{json_api}/manyversions/json", {}),
                ("peer: PyPI JSON API, 2,000 files", f"{json_api}/manyfiles/json", {}),
                ("peer: simple page (cached), 2,000 files", f"{simple}/manyfiles/", BROWSER),
            ]
            medians = {}
            assert server.proc is not None
            process = psutil.Process(server.proc.pid)
            with httpx.Client(timeout=60) as client:
                for label, url, headers in pages:
                    size = len(client.get(url, headers=headers).content)
                    times, cpu = timed(client, process, url, headers, args.requests)
                    medians[label] = report(label, times, cpu, size)
            for shape in ("2,000 versions", "2,000 files"):
                ratio = (
                    medians[f"UI project page, {shape}"] / medians[f"peer: PyPI JSON API, {shape}"]
                )
                print(f"server CPU, UI project page / PyPI JSON API, {shape}: {ratio:.2f}x")
            worst = max(medians[f"UI project page, {s}"] for s in ("2,000 versions", "2,000 files"))
            verdict = "met" if worst < 200 else "MISSED"
            print(f"target: project page under 200 ms of server time: {verdict} ({worst:.0f} ms)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
