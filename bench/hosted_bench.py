"""Benchmark of the hosted read and write paths (a script that prints figures, not a test).

Starts an embedded Wheelyard (SQLite, files on disk, memory cache) in a temp dir, fills it, and
reports:
- simple-page requests/s and latency (p50/p99) with wrk, 32 connections, uv's Accept header
  (JSON) and a browser's (HTML), for a typical project (10 files) and one with 2,000 files;
- peak server RSS while uploading (PUT) and downloading a 1 GiB file;
- download MB/s of that file from Wheelyard and from nginx serving the same stored blob in the
  same run (the static limit), and their ratio.

Needs wrk, nginx and curl (`apt-get install wrk nginx curl`). Usage:
    uv run python bench/hosted_bench.py [--files 2000] [--big-mib 1024] [--duration 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.tcp_proxy import free_port

UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
HTML_ACCEPT = "text/html"
ADMIN = ("admin", "bench-password")


def upload(server: ServerProcess, path: Path, client: httpx.Client) -> None:
    name, version = path.name.split("-")[:2]
    url = f"{server.url}/repositories/default/local/{name}/{version}/{path.name}"
    r = client.put(url, content=path.read_bytes(), auth=ADMIN)
    r.raise_for_status()


def fill(server: ServerProcess, work: Path, files: int) -> None:
    dists = work / "dists"
    dists.mkdir()
    paths = [make_wheel(dists, "typical", f"1.{i}.0") for i in range(10)]
    paths += [make_wheel(dists, "big", f"{i // 100}.{i % 100}.0") for i in range(files)]
    started = time.monotonic()
    with httpx.Client(timeout=60) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: upload(server, p, client), paths))
    print(f"uploaded {len(paths)} wheels in {time.monotonic() - started:.1f}s")


def wrk(url: str, accept: str, duration: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c32",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "5s",
            "-H",
            f"Accept: {accept}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


class RssSampler:
    """Samples the summed RSS of a process tree every 50 ms; `peak` in MiB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[int]:
        pids, frontier = [self.pid], [self.pid]
        while frontier:
            children = []
            for p in frontier:
                try:
                    with open(f"/proc/{p}/task/{p}/children") as fh:
                        children += [int(c) for c in fh.read().split()]
                except OSError:
                    pass
            pids += children
            frontier = children
        return pids

    def _rss(self) -> float:
        total = 0
        for p in self._tree():
            try:
                with open(f"/proc/{p}/status") as fh:
                    for line in fh:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self.baseline = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def make_big_wheel(directory: Path, mib: int) -> Path:
    """A valid wheel with one stored (uncompressed) member of `mib` MiB, written in chunks."""
    path = make_wheel(directory, "huge", "1.0")
    chunk = os.urandom(1024 * 1024)
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf,
        zf.open("huge/data.bin", "w", force_zip64=True) as fh,
    ):
        for _ in range(mib):
            fh.write(chunk)
    return path


def curl_mbps(url: str, rounds: int = 3) -> float:
    speeds = []
    for _ in range(rounds):
        out = subprocess.run(
            ["curl", "-sSf", "-o", "/dev/null", "-w", "%{speed_download}", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        speeds.append(float(out) / 1e6)
    return sorted(speeds)[len(speeds) // 2]


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / "nginx.conf"
    (work / "nginx").mkdir(exist_ok=True)
    conf.write_text(
        ""
        # Workers run as `nobody` unless told otherwise, and cannot read a 0700 temp dir.
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 2; daemon off; pid {work}/nginx/nginx.pid;\n"
        f"error_log {work}/nginx/error.log;\nevents {{}}\n"
        f"http {{ access_log off; sendfile on; client_body_temp_path {work}/nginx;\n"
        f"  proxy_temp_path {work}/nginx; fastcgi_temp_path {work}/nginx;\n"
        f"  uwsgi_temp_path {work}/nginx; scgi_temp_path {work}/nginx;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work / "nginx")])
    for _ in range(50):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required (apt-get install wrk nginx curl)")
    work = Path(tempfile.mkdtemp(prefix="wheelyard-bench-"))
    server = ServerProcess(
        work / "data",
        {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1], "WHEELYARD_MAX_UPLOAD_SIZE": str(4 * 2**30)},
    )
    server.start()
    assert server.proc is not None
    try:
        fill(server, work, args.files)
        base = f"{server.url}/repositories/default/local/simple"
        rows = []
        for label, url in (
            ("typical (10 files)", f"{base}/typical/"),
            (f"big ({args.files} files)", f"{base}/big/"),
        ):
            for fmt, accept in (("JSON", UV_ACCEPT), ("HTML", HTML_ACCEPT)):
                wrk(url, accept, 2)  # warm the page cache and the connection pool
                rows.append((label, fmt, wrk(url, accept, args.duration)))
        print(f"\nsimple pages (wrk -t2 -c32 -d{args.duration}s)")
        print(f"{'project':<20} {'fmt':<5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for label, fmt, r in rows:
            print(
                f"{label:<20} {fmt:<5} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
                f"{r['errors']:>7.0f}"
            )

        big = make_big_wheel(work, args.big_mib)
        digest = hashlib.sha256(big.read_bytes()).hexdigest() if args.big_mib <= 64 else None
        size_mib = big.stat().st_size / 2**20
        url = f"{server.url}/repositories/default/local/huge/1.0/{big.name}"
        with RssSampler(server.proc.pid) as up:
            started = time.monotonic()
            subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-f",
                    "-o",
                    "/dev/null",
                    "-u",
                    f"{ADMIN[0]}:{ADMIN[1]}",
                    "-T",
                    str(big),
                    url,
                ],
                check=True,
            )
            up_s = time.monotonic() - started
        with RssSampler(server.proc.pid) as down:
            wy_mbps = curl_mbps(url)
        blobs = sorted(
            (p for p in (work / "data" / "blobs" / "sha256").rglob("*") if p.is_file()),
            key=lambda p: p.stat().st_size,
        )
        blob = blobs[-1]
        nginx, port = start_nginx(work / "data" / "blobs", work)
        try:
            rel = blob.relative_to(work / "data" / "blobs")
            nginx_mbps = curl_mbps(f"http://127.0.0.1:{port}/{rel}")
        finally:
            nginx.terminate()
            nginx.wait(10)
        print(f"\n{size_mib:.0f} MiB file")
        print(
            f"upload (PUT):   {size_mib * 1.048576 / up_s:8.0f} MB/s, server RSS baseline "
            f"{up.baseline:.0f} MiB, peak {up.peak:.0f} MiB"
        )
        print(f"download:       {wy_mbps:8.0f} MB/s, server RSS peak {down.peak:.0f} MiB")
        print(f"nginx (static): {nginx_mbps:8.0f} MB/s")
        print(f"ratio wheelyard/nginx: {wy_mbps / nginx_mbps:.2f}")
        if digest:
            print("sha256 checked:", digest)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
