"""Benchmark: peak memory (RSS) and throughput of each BlobStore backend on a large blob.

For each backend (filesystem in a temp dir; S3 on a SeaweedFS started for the run) it writes a
generated blob of --size-mib MiB in 1 MiB chunks (never held whole), reads it back fully while
verifying its sha256, and prints the Python process's RSS before (baseline) and at its peak
during each phase, sampled from /proc/self/status every 5 ms, plus MB/s each way.

    uv run python bench/blob_rss.py [--size-mib 1024] [--backend filesystem --backend s3]

The S3 server's own memory is not counted: this measures what Wheelyard's process holds.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from wheelyard.shared.storage import BlobStore, FilesystemBlobStore, S3BlobStore
from wheelyard.testing.blob_fixtures import start_seaweedfs

MiB = 1024 * 1024


def rss_bytes() -> int:
    """Current resident set size of this process, from /proc/self/status (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakSampler:
    """Samples VmRSS in a background thread; `peak` is the highest value seen."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


@dataclass
class Phase:
    seconds: float
    baseline: int
    peak: int


@contextmanager
def measured(out: list[Phase]) -> Iterator[None]:
    baseline = rss_bytes()
    with PeakSampler() as sampler:
        t0 = time.perf_counter()
        yield
        elapsed = time.perf_counter() - t0
    out.append(Phase(elapsed, baseline, sampler.peak))


def generated_chunks(n: int) -> Iterator[bytes]:
    """`n` distinct 1 MiB chunks made on the fly (a counter stamped into a fixed pattern)."""
    pattern = hashlib.sha256(b"wheelyard-bench").digest() * (MiB // 32)
    for i in range(n):
        yield i.to_bytes(8, "big") + pattern[8:]


async def run_backend(store: BlobStore, size_mib: int) -> tuple[Phase, Phase]:
    phases: list[Phase] = []
    expected = hashlib.sha256()
    with measured(phases):
        async with store.writer() as w:
            for chunk in generated_chunks(size_mib):
                expected.update(chunk)
                await w.write(chunk)
    assert w.result is not None and w.result.sha256 == expected.hexdigest()

    got, size = hashlib.sha256(), 0
    with measured(phases):
        async for chunk in store.open(w.result.key):
            got.update(chunk)
            size += len(chunk)
    assert got.hexdigest() == expected.hexdigest() and size == size_mib * MiB
    await store.delete(w.result.key)
    return phases[0], phases[1]


def fmt_mib(n: int) -> str:
    return f"{n / MiB:8.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--backend", action="append", choices=["filesystem", "s3"], dest="backends")
    args = parser.parse_args()
    backends = args.backends or ["filesystem", "s3"]

    rows = []
    with tempfile.TemporaryDirectory(prefix="wy-bench-") as tmp:
        for name in backends:
            stop = None
            store: BlobStore
            if name == "filesystem":
                store = FilesystemBlobStore(Path(tmp) / "blobs")
            else:
                options, stop = start_seaweedfs(Path(tmp) / "seaweedfs")
                store = S3BlobStore("bench", options)
            try:
                write, read = await run_backend(store, args.size_mib)
            finally:
                await store.close()
                if stop is not None:
                    stop()
            rows.append((name, write, read))

    size_mb = args.size_mib * MiB / 1e6
    print(f"blob size: {args.size_mib} MiB in 1 MiB chunks; RSS in MiB")
    header = (
        f"{'backend':<11} {'phase':<6} {'baseline':>8} {'peak':>8} {'+delta':>8} "
        f"{'seconds':>8} {'MB/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, write, read in rows:
        for label, p in (("write", write), ("read", read)):
            print(
                f"{name:<11} {label:<6} {fmt_mib(p.baseline)} {fmt_mib(p.peak)} "
                f"{fmt_mib(p.peak - p.baseline)} {p.seconds:8.2f} {size_mb / p.seconds:8.1f}"
            )
    high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"process high-water mark (getrusage ru_maxrss): {fmt_mib(high_water).strip()} MiB")


if __name__ == "__main__":
    anyio.run(main)
