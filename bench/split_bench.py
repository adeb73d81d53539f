"""Benchmark of the gateway hop: embedded vs split mode (a script that prints figures, not a test).

In one run, on one machine, every figure next to its peer:
- requests/s of a hosted project page (10 files, uv's Accept header; wrk -t2 -c32): embedded on
  its default backends (SQLite, memory cache), embedded on the split mode's backends (Postgres,
  Redis), split with one replica of each service, split with two index replicas;
- the gateway's CPU time per forwarded request (from /proc: its user + system time over the wrk
  run, divided by the requests wrk completed), and the index's, for comparison;
- MB/s of a 200 MB download (curl, median of 3) embedded vs split.
Figures are reported as ratios to embedded on the same backends (the hop's cost alone), and to
embedded on its defaults.

Needs Postgres and Redis (as the tests: WHEELYARD_TEST_DATABASE_URL, WHEELYARD_TEST_REDIS_URL),
wrk and curl. Usage:
    uv run python bench/split_bench.py [--duration 10] [--big-mib 200] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hosted_bench import UV_ACCEPT, curl_mbps, make_big_wheel, wrk

from wheelyard.shared.auth.internal_jwt import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_key_files
from wheelyard.testing.cache_fixtures import DEFAULT_TEST_REDIS_URL
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess

ADMIN = ("admin", "bench-password")
PAGE = "/repositories/default/local/simple/typical/"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_requests(url: str, duration: int) -> tuple[dict[str, float], int]:
    """wrk figures and the number of requests it completed."""
    result = wrk(url, UV_ACCEPT, duration)
    return result, round(result["rps"] * duration)


def fill(url: str, work: Path, big_mib: int) -> str:
    """Upload the typical project and the big file; the big file's URL."""
    dists = work / "dists"
    dists.mkdir(exist_ok=True)
    with httpx.Client(timeout=600, auth=ADMIN) as client:
        for i in range(10):
            wheel = make_wheel(dists, "typical", f"1.{i}.0")
            put = client.put(
                f"{url}/repositories/default/local/typical/1.{i}.0/{wheel.name}",
                content=wheel.read_bytes(),
            )
            put.raise_for_status()
        big = make_big_wheel(dists, big_mib)
        target = f"{url}/repositories/default/local/huge/1.0/{big.name}"
        subprocess.run(
            ["curl", "-sS", "-f", "-o", "/dev/null", "-u", ":".join(ADMIN), "-T", str(big), target],
            check=True,
        )
    return f"/repositories/default/local/huge/1.0/{big.name}"


@contextmanager
def embedded(work: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(work, {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1], **env})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def split(work: Path, common: dict[str, str], index_replicas: int) -> Iterator[dict[str, list]]:
    keys = work / "keys"
    generate_key_files(keys)
    common = common | {
        "WHEELYARD_ADMIN_PASSWORD": ADMIN[1],
        "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY": str(keys / PUBLIC_KEY_FILE),
    }
    procs: dict[str, list[ServerProcess]] = {}
    counts = {"index": index_replicas, "upload": 1, "proxy-cache": 1}
    for name, count in counts.items():
        procs[name] = [
            ServerProcess(
                work / f"{name}-{i}", common, command=("service", name), log_name="service.log"
            )
            for i in range(count)
        ]
    env = common | {
        "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY": str(keys / PRIVATE_KEY_FILE),
        "WHEELYARD_INDEX_URL": ",".join(p.url for p in procs["index"]),
        "WHEELYARD_UPLOAD_URL": procs["upload"][0].url,
        "WHEELYARD_PROXY_CACHE_URL": procs["proxy-cache"][0].url,
    }
    procs["gateway"] = [
        ServerProcess(work / "gateway", env, command=("service", "gateway"), log_name="g.log")
    ]
    try:
        procs["gateway"][0].start()
        for name in counts:
            for proc in procs[name]:
                proc.start()
        yield procs
    finally:
        for group in procs.values():
            for proc in group:
                proc.stop()


def measure_pages(url: str, duration: int, pids: dict[str, list[int]]) -> dict[str, float]:
    """wrk on the page; CPU seconds per request of each process group named in `pids`."""
    wrk(url, UV_ACCEPT, 2)  # warm caches and pools
    before = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}
    result, requests = wrk_requests(url, duration)
    figures = dict(result)
    for name, group in pids.items():
        spent = sum(cpu_seconds(p) for p in group) - before[name]
        figures[f"{name}_ms_per_request"] = spent / max(requests, 1) * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--big-mib", type=int, default=200)
    args = parser.parse_args()
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required (apt-get install wrk curl)")
    redis_url = os.environ.get("WHEELYARD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    root = Path(tempfile.mkdtemp(prefix="wheelyard-split-bench-"))
    rows: dict[str, dict[str, float]] = {}
    mbps: dict[str, float] = {}
    databases: list[tuple[str, str]] = []

    def production_env(label: str) -> dict[str, str]:
        pg_url, dbname = asyncio.run(create_database())
        databases.append((pg_url, dbname))
        return {
            "WHEELYARD_DATABASE_URL": pg_url.rsplit("/", 1)[0] + "/" + dbname,
            "WHEELYARD_BLOB_URL": f"file://{root}/{label}-blobs",
            "WHEELYARD_CACHE_URL": redis_url.rsplit("/", 1)[0] + "/" + str(len(databases) % 16),
            "WHEELYARD_MAX_UPLOAD_SIZE": str(4 * 2**30),
        }

    try:
        with embedded(root / "embedded", {"WHEELYARD_MAX_UPLOAD_SIZE": str(4 * 2**30)}) as s:
            assert s.proc is not None
            big = fill(s.url, root / "embedded", args.big_mib)
            rows["embedded (SQLite, memory)"] = measure_pages(
                s.url + PAGE, args.duration, {"server": [s.proc.pid]}
            )
            mbps["embedded"] = curl_mbps(s.url + big)
        with embedded(root / "embedded-pg", production_env("embedded-pg")) as s:
            assert s.proc is not None
            fill(s.url, root / "embedded-pg", 1)
            rows["embedded (Postgres, Redis)"] = measure_pages(
                s.url + PAGE, args.duration, {"server": [s.proc.pid]}
            )
        for replicas in (1, 2):
            label = f"split-{replicas}"
            with split(root / label, production_env(label), replicas) as procs:
                gateway = procs["gateway"][0]
                big = fill(gateway.url, root / label, args.big_mib if replicas == 1 else 1)
                pids = {
                    name: [p.proc.pid for p in procs[name] if p.proc is not None]
                    for name in ("gateway", "index")
                }
                rows[f"split, {replicas} index replica(s)"] = measure_pages(
                    gateway.url + PAGE, args.duration, pids
                )
                if replicas == 1:
                    mbps["split"] = curl_mbps(gateway.url + big)
    finally:
        for pg_url, dbname in databases:
            asyncio.run(drop_database(pg_url, dbname))
        shutil.rmtree(root, ignore_errors=True)

    same = rows["embedded (Postgres, Redis)"]["rps"]
    default = rows["embedded (SQLite, memory)"]["rps"]
    print(f"\nhosted project page {PAGE} (wrk -t2 -c32 -d{args.duration}s, JSON)")
    print(
        f"{'setup':<30} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs emb-pg':>9} "
        f"{'vs emb':>7} {'gw ms/req':>9} {'idx ms/req':>10}"
    )
    for label, r in rows.items():
        gw = r.get("gateway_ms_per_request")
        idx = r.get("index_ms_per_request", r.get("server_ms_per_request"))
        print(
            f"{label:<30} {r['rps']:>8.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
            f"{r['rps'] / same:>9.2f} {r['rps'] / default:>7.2f} "
            f"{'' if gw is None else f'{gw:.3f}':>9} {'' if idx is None else f'{idx:.3f}':>10}"
        )
    print(f"\n{args.big_mib} MiB download (curl, median of 3)")
    print(f"embedded: {mbps['embedded']:8.0f} MB/s")
    print(
        f"split:    {mbps['split']:8.0f} MB/s   ratio split/embedded: "
        f"{mbps['split'] / mbps['embedded']:.2f}"
    )
    errors = sum(r["errors"] for r in rows.values())
    if errors:
        print(f"WARNING: {errors:.0f} non-2xx responses during the runs")


if __name__ == "__main__":
    main()
