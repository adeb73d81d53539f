"""Benchmark of the proxy repository against a static upstream (a script, not a test).

The upstream is the team benchmark's tree of 102 real wheels (../shared/bench/make_upstream.py
builds it into /tmp/upstream: `python3 ../shared/bench/make_upstream.py`), served by nginx.
Wheelyard runs embedded with that nginx as the upstream of `default/pypi`. Every figure is
reported with the same command run straight against nginx in the same run, and their ratio:

- cold `uv pip install` (empty proxy: pages and files fetched on first request);
- warm `uv pip install --no-cache` (median of --rounds);
- `uv pip compile --no-cache` (resolution: the index's own cost; median of --rounds);
- simple-page requests/s with wrk (uv's Accept header) on `requests/`.

Usage: uv run python bench/proxy_bench.py [--upstream /tmp/upstream] [--rounds 3]
Needs nginx, wrk and uv.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hosted_bench import UV_ACCEPT, start_nginx, wrk

from wheelyard.testing.server import ServerProcess, clean_env

REQUIREMENTS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "requirements.txt"


def uv() -> str:
    found = shutil.which("uv")
    if not found:
        raise SystemExit("uv is required")
    return found


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return elapsed


def install(index: str, work: Path, env: dict[str, str], label: str) -> float:
    venv = work / f"venv-{label}-{time.monotonic_ns()}"
    subprocess.run([uv(), "venv", "-q", "-p", sys.executable, str(venv)], env=env, check=True)
    try:
        return timed(
            [
                uv(),
                "pip",
                "install",
                "--no-cache",
                "--index-url",
                index,
                "-p",
                str(venv / "bin" / "python"),
                "-r",
                str(REQUIREMENTS),
            ],
            env,
        )
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def compile_(index: str, work: Path, env: dict[str, str]) -> float:
    return timed(
        [
            uv(),
            "pip",
            "compile",
            "--no-cache",
            "--no-header",
            "--index-url",
            index,
            "-p",
            sys.executable,
            str(REQUIREMENTS),
            "-o",
            str(work / "out.txt"),
        ],
        env,
    )


def prime(proxy: str, nginx: str) -> None:
    """Fetch every project page and file through the proxy until all answer 200 locally."""
    projects = re.findall(r'href="([^"/]+)/"', httpx.get(nginx).text)
    with httpx.Client(timeout=120) as client:
        for project in projects:
            page = client.get(f"{proxy}{project}/", headers={"Accept": UV_ACCEPT})
            page.raise_for_status()
            for entry in page.json()["files"]:
                client.get(entry["url"]).raise_for_status()
                if entry.get("core-metadata"):
                    client.get(entry["url"] + ".metadata").raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The team benchmark's default location for the tree (its make_upstream.py --dest).
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    if not (args.upstream / "simple" / "index.html").exists():
        raise SystemExit(
            f"no upstream tree at {args.upstream}: run ../shared/bench/make_upstream.py"
        )
    work = Path(tempfile.mkdtemp(prefix="wheelyard-proxy-bench-"))
    env = clean_env(TMPDIR=str(work))
    nginx_proc, port = start_nginx(args.upstream, work)
    nginx = f"http://127.0.0.1:{port}/simple/"
    server = ServerProcess(work / "data", {"WHEELYARD_PYPI_PROXY": nginx})
    server.start()
    proxy = f"{server.url}/repositories/default/pypi/simple/"
    try:
        cold = {
            "wheelyard": install(proxy, work, env, "cold"),
            "nginx": install(nginx, work, env, "nginx-cold"),
        }
        prime(proxy, nginx)
        warm: dict[str, list[float]] = {"wheelyard": [], "nginx": []}
        resolve: dict[str, list[float]] = {"wheelyard": [], "nginx": []}
        for i in range(args.rounds):
            order = [("wheelyard", proxy), ("nginx", nginx)]
            for name, index in order if i % 2 == 0 else order[::-1]:
                warm[name].append(install(index, work, env, name))
                resolve[name].append(compile_(index, work, env))
        pages = {
            "wheelyard": wrk(f"{proxy}requests/", UV_ACCEPT, args.duration),
            "nginx": wrk(f"{nginx}requests/", UV_ACCEPT, args.duration),
        }
        print(f"\n{'measure':<34} {'wheelyard':>10} {'nginx':>10} {'ratio':>7}")

        def row(label: str, ours: float, theirs: float, unit: str) -> None:
            print(f"{label:<34} {ours:>9.2f}{unit} {theirs:>9.2f}{unit} {ours / theirs:>6.2f}x")

        row("cold uv pip install", cold["wheelyard"], cold["nginx"], "s")
        row(
            "warm uv pip install (median)",
            statistics.median(warm["wheelyard"]),
            statistics.median(warm["nginx"]),
            "s",
        )
        row(
            "uv pip compile (median)",
            statistics.median(resolve["wheelyard"]),
            statistics.median(resolve["nginx"]),
            "s",
        )
        ours_rps, nginx_rps = pages["wheelyard"]["rps"], pages["nginx"]["rps"]
        print(
            f"{'simple page req/s (requests/)':<34} {ours_rps:>10.0f} "
            f"{nginx_rps:>10.0f} {ours_rps / nginx_rps:>6.3f}x"
        )
        print(f"{'  p99 ms':<34} {pages['wheelyard']['p99']:>10.1f} {pages['nginx']['p99']:>10.1f}")
    finally:
        server.stop()
        nginx_proc.terminate()
        nginx_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
