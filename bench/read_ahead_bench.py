"""Cold resolutions through a fresh proxy with reading ahead on and off, over an upstream
with a network's latency (a script, not a test).

The team benchmark's upstream is nginx on loopback, answering in microseconds: there, fetching
a `.metadata` before the installer asks for it (`wheelyard.proxy_cache.readahead`) hides
nothing. A real upstream (pypi.org, a corporate mirror) is milliseconds away. This puts a
forwarder in front of nginx that holds every chunk of bytes back `--delay-ms` in each
direction (a round trip of twice that per request), then alternates fresh proxies with
`WHEELYARD_PYPI_PROXY_READ_AHEAD` on and off, timing one cold `uv pip compile --no-cache` of
the team benchmark's requirements through each (or pip's resolution, `--client pip`), with
the server's CPU; and the same resolution straight from the delayed upstream, as the
reference. Medians are printed.

    uv run python bench/read_ahead_bench.py [--rounds 3] [--delay-ms 10] [--client uv|pip]

Needs nginx, uv and the upstream tree (see cold_bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from cold_ab import print_medians, tree_cpu
from cold_bench import SHARED_BENCH, Proxy, clean_env, free_port, start_nginx, tmpfs


class Latency:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`, every chunk of bytes held back
    `delay` seconds in each direction (in its own thread and event loop)."""

    def __init__(self, target: int, delay: float) -> None:
        self.target, self.delay = target, delay
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    sink.close()
                    return
                sink.write(data)
                await sink.drain()

        delivering = asyncio.create_task(deliver())
        with contextlib.suppress(ConnectionError):  # the other side hung up: pass that on
            while data := await source.read(256 * 1024):
                queue.put_nowait((loop.time() + self.delay, data))
        queue.put_nowait((loop.time() + self.delay, b""))
        with contextlib.suppress(ConnectionError):
            await delivering


def resolve_seconds(client: str, index: str, python: Path, env: dict[str, str]) -> float:
    """Seconds for one cold resolution of the team benchmark's requirements: `uv pip
    compile`, or pip's (`pip install --dry-run`, which reads `.metadata` and downloads
    nothing)."""
    if client == "uv":
        args = ["uv", "pip", "compile", "--no-cache", "--index-url", index, "-p", str(python)]
    else:
        args = [str(python), "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q"]
        args += ["--no-cache-dir", "--disable-pip-version-check", "--index-url", index, "-r"]
    started = time.perf_counter()
    subprocess.run(
        [*args, str(SHARED_BENCH / "requirements.txt")],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one way, per direction")
    parser.add_argument("--client", choices=("uv", "pip"), default="uv")
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="read-ahead-"))
    work = Path(tempfile.mkdtemp(prefix="read-ahead-work-", dir=tmpfs()))
    env = clean_env(work)
    nginx, upstream = start_nginx(args.upstream, state)
    nginx_port = int(upstream.split(":")[2].split("/")[0])
    delayed = Latency(nginx_port, args.delay_ms / 1000)
    index = f"http://127.0.0.1:{delayed.port}/simple/"
    python = work / "v" / "bin" / "python"
    venv = ["uv", "venv", "-q", "--seed", "-p", "3.11", str(work / "v")]
    subprocess.run(venv, env=env, check=True)
    print(f"upstream round trip {2 * args.delay_ms:g} ms (nginx behind a delaying forwarder)")
    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": [], "upstream": []}
    try:
        for round_ in range(args.rounds):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for setting in order:
                read_ahead = {"WHEELYARD_PYPI_PROXY_READ_AHEAD": str(setting == "on").lower()}
                data = state / f"data-{round_}-{setting}"
                proxy = Proxy(index, data, free_port(), read_ahead)
                try:
                    proxy.ready()
                    time.sleep(1.0)
                    cpu = tree_cpu(proxy.proc.pid)
                    elapsed = resolve_seconds(args.client, proxy.index, python, env)
                    cpu = tree_cpu(proxy.proc.pid) - cpu
                finally:
                    proxy.stop()
                results[setting].append((elapsed, cpu))
                print(f"round {round_ + 1}: read-ahead {setting}: {elapsed:.2f} s, CPU {cpu:.2f} s")
            direct = resolve_seconds(args.client, index, python, env)
            results["upstream"].append((direct, 0.0))
            print(f"round {round_ + 1}: straight from the upstream: {direct:.2f} s", flush=True)
    finally:
        nginx.terminate()
        nginx.wait(10)
    print_medians(results)


if __name__ == "__main__":
    main()
