"""Server CPU per request on the hot paths (a script that prints figures, not a test).

Wall-clock req/s swings with whatever else the machine runs; the server's own CPU time per
request does much less, so this is the figure to compare two checkouts with on a busy machine.
For each checkout given, it starts `wheelyard serve` (embedded: SQLite, disk, memory cache) from
that checkout, uploads a small wheel and a 2,000-file project through the raw PUT API, warms up,
then drives each path with wrk for a fixed time and reports the server process's CPU seconds
(user + system, from /proc) divided by the requests wrk completed.

Usage: python3 bench/cpu_cost.py [--duration 10] CHECKOUT [CHECKOUT ...]
Needs wrk and uv.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
ADMIN = "bench-admin-pw"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wheel(name: str, version: str, tag: str = "py3-none-any") -> tuple[str, bytes]:
    """A minimal valid wheel (METADATA, WHEEL, RECORD)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return f"{name}-{version}-{tag}.whl", buf.getvalue()


def put(base: str, project: str, version: str, filename: str, data: bytes) -> None:
    url = f"{base}/repositories/default/local/{project}/{version}/{filename}"
    request = urllib.request.Request(url, data=data, method="PUT")  # noqa: S310 (local)
    token = base64.b64encode(f"admin:{ADMIN}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (local server)
        response.read()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wrk(url: str, duration: int, accept: str | None) -> int:
    cmd = ["wrk", "-t2", "-c32", f"-d{duration}s", url]
    if accept:
        cmd[1:1] = ["-H", f"Accept: {accept}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    return int(match.group(1)) if match else 0


def measure(checkout: Path, duration: int) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WHEELYARD_", "UV_", "PIP_"))
        }
        env.update(WHEELYARD_DATA_DIR=data, WHEELYARD_ADMIN_PASSWORD=ADMIN)
        server = subprocess.Popen(
            [
                "uv",
                "run",
                "--directory",
                str(checkout),
                "python",
                "-m",
                "wheelyard.cli",
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.time() + 120
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1).read()  # noqa: S310
                    break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit(f"{checkout}: server did not start") from None
                    time.sleep(0.3)
            pid = int(
                subprocess.run(
                    ["pgrep", "-f", f"serve --port {port}", "-n"], capture_output=True, text=True
                ).stdout.split()[0]
            )
            filename, body = wheel("small", "1.0")
            put(base, "small", "1.0", filename, body)
            for i in range(2000):
                name, data_ = wheel("big", f"1.{i}")
                put(base, "big", f"1.{i}", name, data_)
            paths = {
                "hosted page JSON (10 files)": (
                    "/repositories/default/local/simple/small/",
                    UV_ACCEPT,
                ),
                "hosted page HTML (10 files)": ("/repositories/default/local/simple/small/", None),
                "hosted page JSON (2,000 files)": (
                    "/repositories/default/local/simple/big/",
                    UV_ACCEPT,
                ),
                "group page JSON (/simple/small/)": ("/simple/small/", UV_ACCEPT),
                "hosted download (small wheel)": (
                    f"/repositories/default/local/small/1.0/{filename}",
                    None,
                ),
                "hosted .metadata": (
                    f"/repositories/default/local/small/1.0/{filename}.metadata",
                    None,
                ),
            }
            figures = {}
            for label, (path, accept) in paths.items():
                wrk(base + path, 2, accept)  # warm up
                before = cpu_seconds(pid)
                requests = wrk(base + path, duration, accept)
                spent = cpu_seconds(pid) - before
                figures[label] = spent / max(requests, 1) * 1e6
            return figures
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    results = {c: measure(c.resolve(), args.duration) for c in args.checkouts}
    labels = list(next(iter(results.values())))
    head = "server CPU us/request".ljust(36) + "".join(str(c)[-18:].rjust(20) for c in results)
    print(head)
    for label in labels:
        row = label.ljust(36) + "".join(f"{results[c][label]:20.0f}" for c in results)
        print(row)
    if len(results) == 2:
        first, second = results.values()
        print("\nratio (second / first; below 1.00 = cheaper):")
        for label in labels:
            print(f"  {label:34} {second[label] / first[label]:.2f}")


if __name__ == "__main__":
    main()
