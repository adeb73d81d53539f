"""Footprint of each split-mode process (a script that prints figures, not a test): the
measurements behind the resource requests in deploy/k8s and "Sizing" in docs/deployment.md.

Starts the gateway and one index, upload and proxy-cache process as in production (Postgres in
a fresh database, Redis, SeaweedFS S3), with the team benchmark's upstream tree served by nginx
as the upstream of `default/pypi`, and reports for each process its RSS and CPU (in cores,
CPU seconds over wall seconds) while idle and during each load, one after the other:

- page:     wrk, 32 connections, on a hosted project page (10 files) through the gateway;
- upload:   8 concurrent clients uploading 40 wheels of 20 MiB through the gateway;
- download: 4 concurrent clients downloading a 200 MiB file through the gateway, 3 times each;
- proxy:    a cold `uv pip install` of ../shared/bench/requirements.txt through default/pypi
            (pages and files fetched from the upstream), then wrk on a proxied page.

Usage: uv run python bench/footprint_bench.py [--duration 10] [--upstream /tmp/upstream]
Needs wrk, nginx and uv, and the upstream tree (python3 ../shared/bench/make_upstream.py).
The machine is shared: figures are only comparable within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hosted_bench import UV_ACCEPT, make_big_wheel, start_nginx, wrk
from proxy_bench import REQUIREMENTS, uv

from wheelyard.shared.auth.internal_jwt import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_key_files
from wheelyard.testing.blob_fixtures import start_seaweedfs
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess, clean_env

ADMIN = ("admin", "bench-password")
SERVICES = ("gateway", "index", "upload", "proxy-cache")


class Meter:
    """Samples the RSS of each process tree every 100 ms; reads CPU time at phase edges."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.peak = dict.fromkeys(procs, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self, name: str) -> list[psutil.Process]:
        root = self.procs[name]
        return [root, *root.children(recursive=True)]

    def rss(self, name: str) -> float:
        """MiB, the whole tree (workers included)."""
        return sum(p.memory_info().rss for p in self._tree(name)) / 2**20

    def cpu(self, name: str) -> float:
        """CPU seconds (user + system) of the tree so far."""
        return sum(sum(p.cpu_times()[:2]) for p in self._tree(name))

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.procs:
                with contextlib.suppress(psutil.Error):  # check() reports a process gone
                    self.peak[name] = max(self.peak[name], self.rss(name))
            time.sleep(0.1)

    def check(self) -> None:
        """Fail loudly when a measured process is gone (its figures would be meaningless)."""
        for name, proc in self.procs.items():
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                raise SystemExit(f"{name} (pid {proc.pid}) is gone: the figures are void")

    @contextmanager
    def phase(self, label: str, rows: dict[str, dict[str, str]]) -> Iterator[None]:
        """Measure a phase: each process's cores used and peak RSS during it."""
        before = {n: self.cpu(n) for n in self.procs}
        self.peak = {n: self.rss(n) for n in self.procs}
        started = time.monotonic()
        yield
        wall = time.monotonic() - started
        self.check()
        for name in self.procs:
            cores = (self.cpu(name) - before[name]) / wall
            rows[name][label] = f"{cores:5.2f} c {self.peak[name]:5.0f} MiB"
        figures = ", ".join(f"{n} {rows[n][label].strip()}" for n in self.procs)
        print(f"  {label} ({wall:.0f} s): {figures}", flush=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def start_split(
    work: Path, upstream: str, redis_url: str, s3: dict[str, str], db: str
) -> dict[str, ServerProcess]:
    keys = work / "keys"
    generate_key_files(keys)
    common = {
        "WHEELYARD_DATABASE_URL": db,
        "WHEELYARD_BLOB_URL": "s3://footprint",
        "WHEELYARD_CACHE_URL": redis_url,
        "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY": str(keys / PUBLIC_KEY_FILE),
        "WHEELYARD_ADMIN_PASSWORD": ADMIN[1],
        "WHEELYARD_PYPI_PROXY": upstream,
        "WHEELYARD_ALLOW_PRIVATE_UPSTREAMS": "true",
        "WHEELYARD_LOG_LEVEL": "warning",
        **s3,
    }
    procs = {
        name: ServerProcess(work / name, common, command=("service", name), log_name="log")
        for name in ("index", "upload", "proxy-cache")
    }
    gateway_env = common | {
        "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY": str(keys / PRIVATE_KEY_FILE),
        "WHEELYARD_INDEX_URL": procs["index"].url,
        "WHEELYARD_UPLOAD_URL": procs["upload"].url,
        "WHEELYARD_PROXY_CACHE_URL": procs["proxy-cache"].url,
    }
    procs["gateway"] = ServerProcess(
        work / "gateway", gateway_env, command=("service", "gateway"), log_name="log"
    )
    procs["gateway"].start()  # it migrates and bootstraps
    for name in ("index", "upload", "proxy-cache"):
        procs[name].start()
    return procs


def parallel(jobs: list[Callable[[], object]], workers: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    args = parser.parse_args()
    if not (args.upstream / "simple" / "index.html").exists():
        raise SystemExit(
            f"no upstream tree at {args.upstream}: run ../shared/bench/make_upstream.py"
        )
    work = Path(tempfile.mkdtemp(prefix="wy-footprint-"))
    options, stop_s3 = start_seaweedfs(work / "s3")
    s3 = {
        "WHEELYARD_S3_ENDPOINT": options.endpoint,
        "WHEELYARD_S3_ACCESS_KEY": options.access_key,
        "WHEELYARD_S3_SECRET_KEY": options.secret_key,
        "WHEELYARD_S3_SECURE": "false",
        "WHEELYARD_S3_REGION": options.region or "us-east-1",
    }
    pg_url, dbname = asyncio.run(create_database())
    nginx, nginx_port = start_nginx(args.upstream, work)
    procs: dict[str, ServerProcess] = {}
    try:
        upstream = f"http://127.0.0.1:{nginx_port}/simple/"
        procs = start_split(work, upstream, args.redis, s3, pg_url.rsplit("/", 1)[0] + "/" + dbname)
        gateway = procs["gateway"].url
        local = f"{gateway}/repositories/default/local"
        meter = Meter({n: psutil.Process(procs[n].proc.pid) for n in SERVICES})  # type: ignore[union-attr]
        rows: dict[str, dict[str, str]] = {n: {} for n in SERVICES}
        client = httpx.Client(timeout=300, auth=ADMIN)
        dists = work / "dists"
        dists.mkdir()
        for i in range(10):  # a typical project page: 10 files
            wheel = make_wheel(dists, "typical", f"1.{i}.0")
            client.put(
                f"{local}/typical/1.{i}.0/{wheel.name}", content=wheel.read_bytes()
            ).raise_for_status()
        client.get(f"{local}/simple/typical/").raise_for_status()
        time.sleep(3)

        print("measuring:", flush=True)
        with meter.phase("idle", rows):
            time.sleep(args.duration)
        with meter.phase("page", rows):
            page = wrk(f"{local}/simple/typical/", UV_ACCEPT, args.duration)
        print(f"  hosted page: {page['rps']:.0f} req/s", flush=True)

        uploads = []
        big = dists / "up"
        big.mkdir()
        chunk = os.urandom(2**20)
        for i in range(40):
            path = make_wheel(big, f"bulk{i}", "1.0")
            with (
                zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf,
                zf.open(f"bulk{i}/data.bin", "w") as fh,
            ):
                for _ in range(20):
                    fh.write(chunk)
            uploads.append(path)

        def put(path: Path) -> None:
            name = path.name.split("-")[0]
            r = client.put(f"{local}/{name}/1.0/{path.name}", content=path.read_bytes())
            r.raise_for_status()

        with meter.phase("upload", rows):
            parallel([lambda p=p: put(p) for p in uploads], 8)
        shutil.rmtree(big)

        huge = make_big_wheel(dists, 200)
        client.put(f"{local}/huge/1.0/{huge.name}", content=huge.read_bytes()).raise_for_status()
        listing = client.get(f"{local}/simple/huge/", headers={"Accept": UV_ACCEPT})
        if listing.status_code != 200 or not listing.json().get("files"):
            raise SystemExit(f"no listing of huge: {listing.status_code} {listing.text[:800]}")
        file_url = listing.json()["files"][0]["url"]

        def download() -> None:
            for _ in range(3):
                with client.stream("GET", file_url) as r:
                    r.raise_for_status()
                    for _chunk in r.iter_bytes(1 << 20):
                        pass

        with meter.phase("download", rows):
            parallel([download] * 4, 4)

        proxy = f"{gateway}/repositories/default/pypi/simple/"
        venv = work / "venv"
        env = clean_env(UV_NO_CACHE="1")
        subprocess.run([uv(), "venv", "-q", "-p", sys.executable, str(venv)], env=env, check=True)
        install = [uv(), "pip", "install", "--no-cache", "--index-url", proxy]
        install += ["-p", str(venv / "bin" / "python"), "-r", str(args.requirements)]
        with meter.phase("proxy cold", rows):
            done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"cold install failed:\n{done.stdout}\n{done.stderr}")
        with meter.phase("proxy page", rows):
            proxied = wrk(f"{proxy}requests/", UV_ACCEPT, args.duration)
        meter.close()

        labels = ["idle", "page", "upload", "download", "proxy cold", "proxy page"]
        print(f"\nhosted page through the gateway: {page['rps']:.0f} req/s, ", end="")
        print(f"p50 {page['p50']:.1f} ms, p99 {page['p99']:.1f} ms")
        print(f"proxied page through the gateway: {proxied['rps']:.0f} req/s, ", end="")
        print(f"p99 {proxied['p99']:.1f} ms")
        print("\nper process: cores used (CPU s / wall s) and peak RSS during each phase")
        print(f"{'':12}" + "".join(f"{label:>20}" for label in labels))
        for name in SERVICES:
            print(f"{name:12}" + "".join(f"{rows[name].get(label, '-'):>20}" for label in labels))
    finally:
        for proc in procs.values():
            proc.stop()
        nginx.terminate()
        nginx.wait(10)
        stop_s3()
        asyncio.run(drop_database(pg_url, dbname))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
