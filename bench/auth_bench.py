"""Benchmark of authentication's cost on the hottest read: a simple project page (a script that
prints figures, not a test).

Starts an embedded Wheelyard (SQLite, files on disk, memory cache) in a temp dir, uploads one
project to the public `default/local`, creates a non-admin user, and runs wrk on the same page
with uv's Accept header, anonymously and with `Authorization: Basic` (a valid password), in
alternating rounds. Prints requests/s and latency for both and the ratio authenticated /
anonymous (issue 4's target: >= 0.8).

Needs wrk (`apt-get install wrk`). Usage:
    uv run python bench/auth_bench.py [--duration 10] [--rounds 2] [--files 10]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

import httpx

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess

UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
ADMIN = ("admin", "bench-admin-password")
USER = ("bench-user", "bench-user-password")
PROJECT = "typical"


def prepare(server: ServerProcess, work: Path, files: int) -> str:
    """Create the user and the project; return the page URL."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post(
            "/api/v1/users", json={"username": USER[0], "password": USER[1]}, auth=ADMIN
        )
        r.raise_for_status()
        for i in range(files):
            wheel = make_wheel(work, PROJECT, f"1.{i}.0")
            data = wheel.read_bytes()
            r = client.post(
                "/repositories/default/local/",
                data={
                    ":action": "file_upload",
                    "protocol_version": "1",
                    "name": PROJECT,
                    "version": f"1.{i}.0",
                    "metadata_version": "2.1",
                    "filetype": "bdist_wheel",
                    "pyversion": "py3",
                    "sha256_digest": hashlib.sha256(data).hexdigest(),
                },
                files={"content": (wheel.name, data, "application/octet-stream")},
                auth=ADMIN,
            )
            r.raise_for_status()
    return f"{server.url}/repositories/default/local/simple/{PROJECT}/"


def check(url: str, authorization: str) -> None:
    """Both variants answer 200 with the same body; the authenticated one is `private`."""
    anonymous = httpx.get(url, headers={"Accept": UV_ACCEPT})
    signed_in = httpx.get(url, headers={"Accept": UV_ACCEPT, "Authorization": authorization})
    assert anonymous.status_code == signed_in.status_code == 200, (anonymous, signed_in)
    assert anonymous.content == signed_in.content
    assert "private" in signed_in.headers["cache-control"], signed_in.headers
    wrong = "Basic " + base64.b64encode(f"{USER[0]}:wrong-password".encode()).decode()
    assert httpx.get(url, headers={"Authorization": wrong}).status_code == 401


def wrk(url: str, duration: int, authorization: str | None) -> dict[str, float]:
    """requests/s, p50 and p99 latency (ms) of one wrk run (-t2 -c32)."""
    args = ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", "--timeout", "5s"]
    args += ["-H", f"Accept: {UV_ACCEPT}"]
    if authorization:
        args += ["-H", f"Authorization: {authorization}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": _latency(out, "50%"), "p99": _latency(out, "99%")}


def _latency(out: str, label: str) -> float:
    match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each")
    parser.add_argument("--files", type=int, default=10, help="files on the project page")
    args = parser.parse_args()
    authorization = "Basic " + base64.b64encode(f"{USER[0]}:{USER[1]}".encode()).decode()

    with tempfile.TemporaryDirectory(prefix="wheelyard-auth-bench-") as tmp:
        work = Path(tmp)
        env = {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1], "WHEELYARD_LOG_LEVEL": "warning"}
        with ServerProcess(work / "data", env) as server:
            (work / "dists").mkdir()
            url = prepare(server, work / "dists", args.files)
            check(url, authorization)
            print(f"page: {url} ({args.files} files), wrk -t2 -c32 -d{args.duration}s, uv Accept")
            wrk(url, 2, None)  # warm-up: page cache, verified-credential cache, minted tokens
            wrk(url, 2, authorization)
            results: dict[str, list[dict[str, float]]] = {"anonymous": [], "basic": []}
            for round_ in range(args.rounds):
                for label, header in (("anonymous", None), ("basic", authorization)):
                    result = wrk(url, args.duration, header)
                    results[label].append(result)
                    print(
                        f"  round {round_ + 1} {label:>9}: {result['rps']:8.0f} req/s  "
                        f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms"
                    )
            anonymous = statistics.mean(r["rps"] for r in results["anonymous"])
            basic = statistics.mean(r["rps"] for r in results["basic"])
            ratio = basic / anonymous
            print(f"anonymous:          {anonymous:8.0f} req/s (mean of {args.rounds})")
            print(f"basic (password):   {basic:8.0f} req/s (mean of {args.rounds})")
            verdict = "meets" if ratio >= 0.8 else "MISSES"
            print(f"ratio basic/anonymous: {ratio:.2f} ({verdict} the >= 0.8 target)")


if __name__ == "__main__":
    main()
