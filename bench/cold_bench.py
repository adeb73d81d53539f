"""Cold installs through the proxy against nginx as the upstream (a script, not a test).

Each round starts a *fresh* Wheelyard proxy (empty data directory) the way the team benchmark
starts its "wheelyard-proxy" entry (`uv run --directory <checkout> wheelyard serve`, embedded
backends, WHEELYARD_PYPI_PROXY pointing at nginx), times one `uv pip install --no-cache -r
requirements.txt` into a fresh venv through it, and times the same install straight from nginx.
The order alternates between rounds (the box is noisy); medians and their ratio are printed.

The server's memory is sampled every 50 ms from /proc while it runs: its whole process tree
(the `uv run` wrapper included, as the team benchmark counts it) and the Python process alone,
idle (after start, before the first request) and at the peak of the cold install.

    uv run python bench/cold_bench.py [--rounds 3] [--upstream /tmp/upstream]

Needs nginx and uv, and the team benchmark's upstream tree: ../shared/bench/make_upstream.py
writes it into /tmp/upstream and MANIFEST.tsv last (this script waits for that file). Install
targets and uv's temporary files go to --work (default: a directory on the team benchmark's
tmpfs /tmp/bench-work when it is mounted, else on /dev/shm, else in /tmp), so that the client's
disk writes do not drown the servers' differences; the proxy's data directory is on disk in /tmp,
as in the team benchmark.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
SHARED_BENCH = CHECKOUT.parent / "shared" / "bench"
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def wait_upstream(root: Path, timeout: float) -> None:
    """make_upstream.py writes MANIFEST.tsv after the whole tree: wait for it (bounded)."""
    deadline = time.monotonic() + timeout
    while not (root / "MANIFEST.tsv").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no {root}/MANIFEST.tsv: run ../shared/bench/make_upstream.py")
        time.sleep(2)


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx serving the PEP 503 tree as the team benchmark does (2 workers, sendfile,
    keep-alive), on a port of its own so that a team benchmark run is not disturbed."""
    port = free_port()
    state = work / "nginx"
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off; worker_processes 2; pid {state}/nginx.pid; error_log {state}/error.log;\n"
        "events { worker_connections 1024; }\n"
        "http { include /etc/nginx/mime.types; default_type application/octet-stream;\n"
        "  sendfile on; tcp_nopush on; keepalive_requests 100000; access_log off;\n"
        f"  client_body_temp_path {state}; proxy_temp_path {state}; fastcgi_temp_path {state};\n"
        f"  uwsgi_temp_path {state}; scgi_temp_path {state};\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; index index.html;\n"
        "    location /simple/ { charset utf-8; } location /packages/ { } } }\n"
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(state)])
    url = f"http://127.0.0.1:{port}/simple/"
    wait_http(url, proc, 20)
    return proc, url


def children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            found.setdefault(parent, []).append(int(entry))
    return found


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class Sampler:
    """RSS of a process tree (and of its largest process) every `interval` seconds."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.tree_peak = 0
        self.python_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        tree = children()
        pids, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(tree.get(pid, []))
        sizes = [rss(pid) for pid in pids]
        return sum(sizes), max(sizes, default=0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            tree, largest = self.sample()
            self.tree_peak = max(self.tree_peak, tree)
            self.python_peak = max(self.python_peak, largest)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def tmpfs() -> str | None:
    """A memory-backed directory for install targets, if there is one."""
    for candidate in ("/tmp/bench-work", "/dev/shm"):  # noqa: S108 (the team bench's tmpfs)
        if os.path.ismount(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return None


def clean_env(work: Path) -> dict[str, str]:
    """No UV_*/PIP_* of this machine, no config files; temporary files next to the venvs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["UV_NO_CONFIG"] = "1"
    env["PIP_CONFIG_FILE"] = os.devnull
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(work / "tmp")
    return env


def install(index: str, requirements: Path, work: Path, env: dict[str, str]) -> float:
    """Seconds for one `uv pip install --no-cache` into a fresh venv from `index`."""
    venv = work / f"venv-{time.monotonic_ns()}"
    subprocess.run(
        ["uv", "venv", "-q", "-p", "3.11", str(venv)],
        env=env,
        check=True,
        timeout=120,
    )
    args = ["uv", "pip", "install", "--no-cache", "--index-url", index]
    args += ["-p", str(venv / "bin" / "python"), "-r", str(requirements)]
    try:
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout}\n{done.stderr}")
        return elapsed
    finally:
        shutil.rmtree(venv, ignore_errors=True)


class Proxy:
    """A fresh `wheelyard serve` with the proxy repository default/pypi in front of nginx."""

    def __init__(
        self, upstream: str, data: Path, port: int, settings: dict[str, str] | None = None
    ) -> None:
        """`settings`: WHEELYARD_* variables besides the data directory, upstream, password."""
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHEELYARD_")}
        env.update(
            WHEELYARD_DATA_DIR=str(data),
            WHEELYARD_PYPI_PROXY=upstream,
            WHEELYARD_ADMIN_PASSWORD="bench-admin-pw",  # noqa: S106 (a local bench server)
        )
        env.update(settings or {})
        self.log = (data.parent / f"{data.name}.log").open("wb")
        command = ["uv", "run", "--directory", str(CHECKOUT), "wheelyard", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        self.proc = subprocess.Popen(
            command, env=env, cwd=data, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.base = f"http://127.0.0.1:{port}"
        self.index = f"{self.base}/repositories/default/pypi/simple/"

    def ready(self) -> None:
        wait_http(f"{self.base}/healthz", self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    parser.add_argument("--requirements", type=Path, default=SHARED_BENCH / "requirements.txt")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--wait-upstream", type=float, default=1800, help="seconds, at most")
    args = parser.parse_args()
    for tool in ("nginx", "uv"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required")
    wait_upstream(args.upstream, args.wait_upstream)
    if args.work is not None:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="cold-bench-", dir=tmpfs()))
    state = Path(tempfile.mkdtemp(prefix="cold-bench-state-"))
    env = clean_env(work)
    nginx, upstream = start_nginx(args.upstream, state)
    times: dict[str, list[float]] = {"wheelyard": [], "nginx": []}
    memory: list[dict[str, int]] = []
    try:
        for round_ in range(args.rounds):
            proxy = Proxy(upstream, state / f"data-{round_}", free_port())
            try:
                proxy.ready()
                time.sleep(1.0)  # what the process keeps once started, not its start-up work
                idle_tree, idle_python = Sampler(proxy.proc.pid).sample()
                order = ["wheelyard", "nginx"] if round_ % 2 == 0 else ["nginx", "wheelyard"]
                for name in order:
                    if name == "nginx":
                        times[name].append(install(upstream, args.requirements, work, env))
                        continue
                    with Sampler(proxy.proc.pid) as sampler:
                        times[name].append(install(proxy.index, args.requirements, work, env))
                    memory.append(
                        {
                            "idle_tree": idle_tree,
                            "idle_python": idle_python,
                            "peak_tree": sampler.tree_peak,
                            "peak_python": sampler.python_peak,
                        }
                    )
                print(
                    f"round {round_ + 1}: wheelyard (cold) {times['wheelyard'][-1]:.2f}s, "
                    f"nginx {times['nginx'][-1]:.2f}s",
                    flush=True,
                )
            finally:
                proxy.stop()
    finally:
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    ours, theirs = statistics.median(times["wheelyard"]), statistics.median(times["nginx"])
    print(f"\ncold uv pip install, median of {args.rounds} fresh proxies")
    print(f"  wheelyard proxy {ours:6.2f}s   nginx {theirs:6.2f}s   ratio {ours / theirs:.2f}x")
    for key, label in (
        ("idle_tree", "idle RSS, process tree (uv run + python)"),
        ("idle_python", "idle RSS, python process"),
        ("peak_tree", "peak RSS during the cold install, tree"),
        ("peak_python", "peak RSS during the cold install, python"),
    ):
        print(f"  {label:<44} {statistics.median(m[key] for m in memory) / MiB:6.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
