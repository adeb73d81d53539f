"""The warm hot paths of hosted and proxy repositories against nginx, in one run (a script that
prints figures, not a test).

Set up like the team benchmark (../shared/bench: servers.py, run.py): nginx serves the tree of
102 real wheels that ../shared/bench/make_upstream.py builds in /tmp/upstream; `wheelyard serve`
runs embedded from a checkout with `WHEELYARD_PYPI_PROXY` pointing at that nginx, the wheels
are uploaded to `default/local` with twine, and every page and file of `default/pypi` is fetched
once (primed). Then, for nginx, the hosted and the proxy repository in turn (same run, so the
ratios hold however busy the machine is):

- page / root: wrk -t2 -c32 on `requests/` and on the root page, uv's Accept header;
- file / metadata: wrk on one small wheel and on its `.metadata`;
- fetchall: curl --parallel --parallel-max 8 of all 102 wheels, `--passes` times;
- download: curl of the largest wheel (55 MB), `--downloads` times;
- resolve: `uv pip compile --no-cache` of the workload; install: warm `uv pip install --no-cache`.

Each figure comes with the server's CPU time (user + system of its whole process tree, from
/proc) per request or per MB: on a shared 2-core machine it moves much less than wall-clock.
With `--profile DIR` py-spy records the Wheelyard process during each phase (collapsed stacks,
`DIR/<phase>-<target>.txt`).

Usage: uv run python bench/hot_files.py [--checkout .] [--phases page,root,...] [--profile DIR]
Needs nginx, wrk, curl and uv (and py-spy for --profile).
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEAM_BENCH = HERE.parents[1] / "shared" / "bench"
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
ADMIN = "bench-admin-pw"
TICKS = os.sysconf("SC_CLK_TCK")
PHASES = ("page", "root", "file", "metadata", "fetchall", "download", "resolve", "install")


def log(*args: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


# -- processes ---------------------------------------------------------------------------------


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system, children reaped included) of `root` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / TICKS
        todo.extend(children.get(pid, ()))
    return total


def python_pid(root: int) -> int:
    """The Python server process under `uv run` (the deepest descendant)."""
    pid = root
    for _ in range(5):
        found = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        if not found:
            return pid
        pid = int(found[0])
    return pid


def wait_http(url: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local)
                response.read()
                return
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"{url} did not answer") from None
            time.sleep(0.3)


def start_nginx(work: Path, port: int, root: Path) -> subprocess.Popen[bytes]:
    state = work / "nginx"
    state.mkdir()
    conf = (TEAM_BENCH / "conf" / "nginx.conf.tmpl").read_text()
    conf = conf.replace("@ROOT@", str(root)).replace("@STATE@", str(state))
    (state / "nginx.conf").write_text(conf.replace("@PORT@", str(port)))
    process = subprocess.Popen(
        [
            "nginx",
            "-e",
            str(state / "error.log"),
            "-p",
            str(state),
            "-c",
            str(state / "nginx.conf"),
        ],
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/simple/")
    return process


def start_wheelyard(
    checkout: Path,
    work: Path,
    port: int,
    upstream: str,
    extra_env: dict[str, str],
    command: str | None = None,
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHEELYARD_", "UV_", "PIP_"))}
    env.update(
        WHEELYARD_DATA_DIR=str(work / "wheelyard"),
        WHEELYARD_PYPI_PROXY=upstream,
        WHEELYARD_ADMIN_PASSWORD=ADMIN,
        **extra_env,
    )
    log_file = (work / "wheelyard.log").open("wb")
    argv = [*("uv", "run", "--directory", str(checkout), "wheelyard", "serve")]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    if command:  # another way of serving the same app (another ASGI server, say)
        argv = command.format(port=port).split()
    process = subprocess.Popen(
        argv,
        cwd=checkout,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# -- the index as a client sees it ------------------------------------------------------------


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def project_files(index: str, project: str) -> list[tuple[str, str, bool]]:
    """(filename, absolute URL, has metadata) from the HTML project page."""
    page = index + project + "/"
    request = urllib.request.Request(page, headers={"Accept": "text/html"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (local)
        body = response.read().decode()
    parser = _Links()
    parser.feed(body)
    out = []
    for link in parser.links:
        url = urllib.parse.urljoin(page, link.get("href") or "").split("#")[0]
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        metadata = link.get("data-core-metadata") or link.get("data-dist-info-metadata")
        out.append((filename, url, bool(metadata and metadata != "false")))
    return out


def lock_projects() -> list[str]:
    lock = (TEAM_BENCH / "requirements.lock").read_text().splitlines()
    return [line.split("==")[0] for line in lock if line and not line.startswith("#")]


def check_bytes(target: Target, upstream: Path) -> None:
    """The bytes served for the largest and a mid-sized wheel are the upstream's."""
    rows = [line.split("\t") for line in (upstream / "MANIFEST.tsv").read_text().splitlines()]
    rows = sorted((row for row in rows if len(row) == 3), key=lambda row: int(row[1]))
    for filename, _size, sha256 in (rows[-1], rows[len(rows) // 2]):
        digest = hashlib.sha256()
        url = target.files[filename][0]
        with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 (local)
            while chunk := response.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise SystemExit(f"{target.name} served other bytes for {filename}")


def manifest(upstream: Path) -> dict[str, int]:
    rows = [line.split("\t") for line in (upstream / "MANIFEST.tsv").read_text().splitlines()]
    return {row[0]: int(row[1]) for row in rows if row and row[0]}


def locked_urls(index: str, wanted: dict[str, int]) -> dict[str, tuple[str, bool]]:
    """The locked wheels' URLs (and whether a `.metadata` is listed) as `index` lists them."""
    urls: dict[str, tuple[str, bool]] = {}
    for project in lock_projects():
        for filename, url, metadata in project_files(index, project):
            if filename in wanted:
                urls[filename] = (url, metadata)
    return urls


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 (local)
            while response.read(1 << 20):
                pass
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# -- workloads ---------------------------------------------------------------------------------


def run_wrk(url: str, duration: int) -> dict[str, float]:
    cmd = ["wrk", "-t2", "-c32", f"-d{duration}s", "--timeout", "5s"]
    cmd += ["-H", f"Accept: {UV_ACCEPT}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"value": rps, "count": requests}


def run_fetchall(urls: list[str], work: Path, passes: int) -> dict[str, float]:
    config = work / "fetchall.curlrc"
    config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls * passes))
    cmd = ["curl", "--parallel", "--parallel-max", "8", "-sS", "--max-time", "300"]
    cmd += ["-w", "%{http_code} %{size_download}\n", "-K", str(config)]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - started
    rows = [line.split() for line in out.splitlines() if line.strip()]
    if any(row[0] != "200" for row in rows) or len(rows) != len(urls) * passes:
        raise SystemExit(f"fetchall: not every file answered 200:\n{out[:2000]}")
    total = sum(int(row[1]) for row in rows)
    return {"value": total / seconds / 1e6, "count": total / 1e6}


def run_download(url: str, times: int) -> dict[str, float]:
    speeds, total = [], 0
    for _ in range(times):
        cmd = [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{time_total}",
        ]
        code, size, seconds = subprocess.run(
            [*cmd, url], capture_output=True, text=True, check=True
        ).stdout.split()
        if code != "200":
            raise SystemExit(f"download of {url}: {code}")
        speeds.append(int(size) / float(seconds) / 1e6)
        total += int(size)
    return {"value": statistics.median(speeds), "count": total / 1e6}


def clean_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1", PIP_CONFIG_FILE=os.devnull, TMPDIR=str(work / "tmp"))
    (work / "tmp").mkdir(exist_ok=True)
    return env


def run_uv(index: str, work: Path, rounds: int, *, install: bool) -> dict[str, float]:
    env = clean_env(work)
    requirements = TEAM_BENCH / "requirements.txt"
    times = []
    for _ in range(rounds):
        venv = work / "venv"
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(venv)], env=env, check=True)
        python = str(venv / "bin" / "python")
        if install:
            cmd = ["uv", "pip", "install", "--no-cache", "--index-url", index, "-p", python]
            cmd += ["-r", str(requirements)]
        else:
            cmd = ["uv", "pip", "compile", "--no-cache", "--no-header", "--index-url", index]
            cmd += ["-p", python, str(requirements), "-o", str(work / "compiled.txt")]
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        shutil.rmtree(venv, ignore_errors=True)
    return {"value": statistics.median(times), "count": rounds}


# -- the run -----------------------------------------------------------------------------------


class Target:
    """One index under test: its URL, the process whose CPU is counted, its file URLs."""

    def __init__(self, name: str, index: str, pid: int, files: dict[str, tuple[str, bool]]):
        self.name = name
        self.index = index
        self.pid = pid
        self.files = files


def prime(target: Target) -> None:
    """Fetch every listed wheel and `.metadata` until all answer 200 (a warm proxy)."""
    for attempt in range(5):
        misses = 0
        for url, metadata in target.files.values():
            for u in [url, url + ".metadata"] if metadata else [url]:
                if status_of(u) != 200:
                    misses += 1
        log(f"prime {target.name} pass {attempt + 1}: {misses} misses")
        if misses == 0:
            return
        time.sleep(2)
    raise SystemExit(f"{target.name}: files still missing after priming")


def measure(
    phase: str, target: Target, args: argparse.Namespace, work: Path, sizes: dict[str, int]
) -> dict[str, float]:
    smallest = min(target.files, key=lambda f: sizes[f] if target.files[f][1] else 1 << 62)
    largest = max(target.files, key=lambda f: sizes[f])
    if phase == "page":
        return run_wrk(target.index + "requests/", args.duration)
    if phase == "root":
        return run_wrk(target.index, args.duration)
    if phase == "file":
        return run_wrk(target.files[smallest][0], args.duration)
    if phase == "metadata":
        return run_wrk(target.files[smallest][0] + ".metadata", args.duration)
    if phase == "fetchall":
        urls = [url for url, _ in target.files.values()]
        return run_fetchall(urls, work, args.passes)
    if phase == "download":
        return run_download(target.files[largest][0], args.downloads)
    if phase == "resolve":
        return run_uv(target.index, work, args.rounds, install=False)
    if phase == "install":
        return run_uv(target.index, work, args.rounds, install=True)
    raise ValueError(phase)


UNITS = {
    "page": ("req/s", "us/req"),
    "root": ("req/s", "us/req"),
    "file": ("req/s", "us/req"),
    "metadata": ("req/s", "us/req"),
    "fetchall": ("MB/s", "ms/MB"),
    "download": ("MB/s", "ms/MB"),
    "resolve": ("s", "s/run"),
    "install": ("s", "s/run"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=HERE.parent)
    parser.add_argument("--upstream", type=Path, default=Path("/tmp/upstream"))  # noqa: S108
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--targets", default="nginx,hosted,proxy")
    parser.add_argument("--port", type=int, default=18290)
    parser.add_argument("--nginx-port", type=int, default=18280)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--passes", type=int, default=3, help="fetchall passes")
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="uv runs per figure")
    parser.add_argument("--profile", type=Path, help="py-spy output directory")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--command", help="serve with this command instead ({port} is replaced)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    sizes = manifest(args.upstream)
    extra_env = dict(item.split("=", 1) for item in args.env)

    with tempfile.TemporaryDirectory(prefix="hot-files-") as tmp:
        work = Path(tmp)
        nginx = start_nginx(work, args.nginx_port, args.upstream)
        upstream = f"http://127.0.0.1:{args.nginx_port}/simple/"
        server = None
        try:
            server = start_wheelyard(args.checkout.resolve(), work, args.port, upstream, extra_env)
            pid = python_pid(server.pid)
            base = f"http://127.0.0.1:{args.port}/repositories/default"
            twine = [sys.executable, "-m", "twine", "upload", "--disable-progress-bar"]
            twine += ["--repository-url", f"{base}/local/", "-u", "admin", "-p", ADMIN]
            twine += sorted(str(p) for p in (args.upstream / "packages").glob("*.whl"))
            log("uploading the wheels to default/local")
            uploaded = subprocess.run(twine, capture_output=True, text=True, check=False)
            if uploaded.returncode != 0:
                raise SystemExit(f"twine upload failed:\n{uploaded.stdout[-3000:]}")
            index = {
                "nginx": upstream,
                "hosted": f"{base}/local/simple/",
                "proxy": f"{base}/pypi/simple/",
            }
            targets = [
                Target(
                    name,
                    index[name],
                    nginx.pid if name == "nginx" else pid,
                    locked_urls(index[name], sizes),
                )
                for name in args.targets.split(",")
            ]
            for target in targets:
                if len(target.files) != len(sizes):
                    raise SystemExit(f"{target.name} lists {len(target.files)} locked wheels")
                if target.name == "proxy":
                    prime(target)
                check_bytes(target, args.upstream)
            results: dict[str, dict[str, dict[str, float]]] = {}
            for phase in phases:
                for target in targets:
                    spy = None
                    if args.profile and target.name != "nginx":
                        args.profile.mkdir(parents=True, exist_ok=True)
                        out = args.profile / f"{phase}-{target.name}.txt"
                        spy = subprocess.Popen(
                            [
                                *("py-spy", "record", "-p", str(pid), "-r", "250"),
                                *("--format", "raw", "--nonblocking", "-o", str(out)),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        time.sleep(1)
                    before = tree_cpu(target.pid if target.name == "nginx" else server.pid)
                    figure = measure(phase, target, args, work, sizes)
                    spent = tree_cpu(target.pid if target.name == "nginx" else server.pid) - before
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=60)
                    figure["cpu"] = spent
                    results.setdefault(phase, {})[target.name] = figure
                    unit, cpu_unit = UNITS[phase]
                    per = spent / max(figure["count"], 1e-9)
                    scale = 1e6 if cpu_unit == "us/req" else 1e3 if cpu_unit == "ms/MB" else 1
                    log(
                        f"{phase:9s} {target.name:7s} {figure['value']:10.2f} {unit:5s} "
                        f"cpu {per * scale:9.1f} {cpu_unit}"
                    )
            report(results, phases)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
        finally:
            if server is not None:
                stop(server)
            stop(nginx)


def report(results: dict[str, dict[str, dict[str, float]]], phases: list[str]) -> None:
    print("\nphase      target        figure        ratio to nginx   server CPU")
    for phase in phases:
        unit, cpu_unit = UNITS[phase]
        row = results.get(phase, {})
        reference = row.get("nginx")
        for name, figure in row.items():
            ratio = ""
            if reference and name != "nginx":
                ratio = f"{figure['value'] / reference['value']:.3f}x"
            per = figure["cpu"] / max(figure["count"], 1e-9)
            scale = 1e6 if cpu_unit == "us/req" else 1e3 if cpu_unit == "ms/MB" else 1
            print(
                f"{phase:10s} {name:8s} {figure['value']:10.2f} {unit:5s} {ratio:>12s} "
                f"{per * scale:12.1f} {cpu_unit}"
            )


if __name__ == "__main__":
    main()
