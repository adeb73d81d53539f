"""Micro-benchmark for simple-API rendering (not a test: nothing here asserts on time).

Renders a 2,000-file project page in HTML and JSON N times and prints milliseconds per render,
plus the cost of negotiation, ETag and (for the proxy) parsing the page back.

    uv run python bench/render_bench.py [N]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from wheelyard.shared.packaging.simple import model, render_html, render_json
from wheelyard.shared.packaging.simple.model import JSON_V1, TEXT_HTML, ProjectPage, SimpleFile
from wheelyard.shared.packaging.simple.render_html import render_project_html
from wheelyard.shared.packaging.simple.render_json import render_project_json
from wheelyard.shared.packaging.simple.upstream import parse_upstream_page
from wheelyard.shared.web.conditional import etag_for
from wheelyard.shared.web.negotiation import negotiate

FILES = 2000
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def build_page(files: int = FILES) -> ProjectPage:
    """A realistic big page: 400 releases x 5 files, mixed yanks and requires-python."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    entries = []
    versions = []
    tags = ("cp39-cp39", "cp310-cp310", "cp311-cp311", "cp312-cp312")
    for i in range(files):
        version = f"{i // 5 // 20}.{i // 5 % 20}"
        versions.append(version)
        wheel = i % 5 != 0
        filename = (
            f"foo_bar-{version}-{tags[i % 5 - 1]}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
            if wheel
            else f"foo_bar-{version}.tar.gz"
        )
        entries.append(
            SimpleFile(
                filename=filename,
                url=f"../../files/{i:02x}/{i:064x}/{filename}",
                sha256=f"{i:064x}",
                size=1_000_000 + i,
                upload_time=start + timedelta(hours=i, microseconds=i),
                requires_python=">=3.9,<4" if i % 3 else None,
                yanked=("broken build" if i % 97 == 0 else (i % 89 == 0)),
                core_metadata_sha256=f"{i + 1:064x}" if wheel else None,
            )
        )
    return ProjectPage(name="foo-bar", files=entries, versions=versions)


def per_call_ms(fn: Callable[[], object], n: int) -> float:
    fn()  # warm caches (version keys, lru caches)
    best = float("inf")
    for _ in range(3):  # best of three batches: least disturbed by the rest of the machine
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1000


def cold_ms(fn: Callable[[], object], n: int) -> float:
    """Per-call time with the per-file fragment and version caches emptied before each call:
    the cost of a page none of whose files was rendered before."""
    total = 0.0
    for _ in range(n):
        # Private caches, cleared on purpose: this is a benchmark, not an API user.
        render_html._html_anchor.cache_clear()
        render_json._json_file.cache_clear()
        model._version_key.cache_clear()
        model._sorted_versions.cache_clear()
        started = time.perf_counter()
        fn()
        total += time.perf_counter() - started
    return total / n * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    page = build_page()
    html = render_project_html(page)
    body = render_project_json(page)
    print(f"page: {FILES} files, {len(set(page.versions))} versions, N={n}")
    print(f"HTML body {len(html) / 1024:.0f} KiB, JSON body {len(body) / 1024:.0f} KiB")
    print("                      cold (no cached fragments)   warm (best of 3 batches)")
    for label, fn in (
        ("render_project_html", lambda: render_project_html(page)),
        ("render_project_json", lambda: render_project_json(page)),
    ):
        print(f"{label:22s}{cold_ms(fn, n):12.3f} ms{per_call_ms(fn, n):22.3f} ms")
    print(f"etag_for(json body)  {per_call_ms(lambda: etag_for(body), n):8.3f} ms")
    print(f"negotiate(pip)       {per_call_ms(lambda: negotiate(PIP_ACCEPT), n * 1000):8.5f} ms")
    base = "https://upstream.example/simple/foo-bar/"
    parse_n = max(1, n // 10)
    parse_json_ms = per_call_ms(lambda: parse_upstream_page(body, JSON_V1, base), parse_n)
    parse_html_ms = per_call_ms(lambda: parse_upstream_page(html, TEXT_HTML, base), parse_n)
    print(f"parse_upstream json  {parse_json_ms:8.3f} ms")
    print(f"parse_upstream html  {parse_html_ms:8.3f} ms")


if __name__ == "__main__":
    main()
