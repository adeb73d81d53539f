"""Browser tests: Debian's Chromium driven by Playwright, axe-core for accessibility checks,
screenshots as test artifacts (`test-artifacts/browser/`), and a network guard.

What the tests need is installed here when missing, and a test fails (never skips) when it
cannot be: Chromium with `apt-get install chromium` (as root), axe-core with npm into a cache
directory (`WHEELYARD_TEST_CACHE`, default `~/.cache/wheelyard-tests`). Playwright (the Python
package, a dev dependency) only drives the browser; it never downloads one.

Every browser context routes all its requests through `NetworkGuard`: requests to the server
under test go through, anything else is aborted and recorded, so a test can assert that a page
tried to reach no other host (and nothing leaves the machine even if one does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
AXE_VERSION = "4.14.1"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: axe-core impacts a page must not have.
BLOCKING_IMPACTS = ("serious", "critical")


def _as_root(command: list[str]) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.fail(
            f"{command[0]} needs root to install what the browser tests need: " + " ".join(command),
            pytrace=False,
        )
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _apt_install(package: str) -> None:
    update = _as_root(["apt-get", "update", "-qq"])
    install = _as_root(["apt-get", "install", "-y", "-qq", package])
    if install.returncode != 0:
        pytest.fail(
            f"apt-get install {package} failed:\n{update.stderr}\n{install.stderr}",
            pytrace=False,
        )


def ensure_chromium() -> str:
    """The path of Debian's Chromium, installed with apt-get when missing."""
    if not Path(CHROMIUM).exists():
        _apt_install("chromium")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing after apt-get install chromium", pytrace=False)
    return CHROMIUM


def ensure_axe() -> str:
    """axe-core's browser bundle (its source), installed with npm into the cache when missing."""
    cache = Path(os.environ.get("WHEELYARD_TEST_CACHE", Path.home() / ".cache/wheelyard-tests"))
    prefix = cache / f"npm-axe-{AXE_VERSION}"
    bundle = prefix / "node_modules" / "axe-core" / "axe.min.js"
    if not bundle.exists():
        if shutil.which("npm") is None:
            _apt_install("npm")
        prefix.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"axe-core@{AXE_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0 or not bundle.exists():
            pytest.fail(f"npm install axe-core failed:\n{result.stderr}", pytrace=False)
    return bundle.read_text()


@dataclass
class NetworkGuard:
    """Lets requests to `allowed` origins through; aborts and records every other one."""

    allowed: set[str]
    requested: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def handle(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        self.requested.append(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" in self.allowed:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("blockedbyclient")


@dataclass
class Browser:
    """A fresh Chromium profile with a network guard, dialogs recorded (and dismissed)."""

    context: Any
    guard: NetworkGuard
    axe_source: str
    artifacts: Path
    dialogs: list[str] = field(default_factory=list)

    def new_page(self) -> Any:
        page = self.context.new_page()

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    def check_accessibility(self, page: Any, name: str) -> list[dict[str, Any]]:
        """Run axe-core on the page; return its serious and critical violations."""
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Evaluated through the DevTools protocol: the page's CSP does not apply to it.
            page.evaluate(self.axe_source + "\n;undefined")
        result = page.evaluate(
            "async () => JSON.stringify(await axe.run(document, {resultTypes: ['violations']}))"
        )
        violations = json.loads(result)["violations"]
        blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
        if blocking:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            (self.artifacts / f"{name}.axe.json").write_text(json.dumps(blocking, indent=2))
        return blocking

    def screenshot(self, page: Any, name: str) -> Path:
        """A full-page PNG of `page` in the artifacts folder."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="session")
def browser_artifacts(pytestconfig: pytest.Config) -> Path:
    """Where screenshots and accessibility reports go: `test-artifacts/browser/` under the
    project's root (git-ignored)."""
    return pytestconfig.rootpath / "test-artifacts" / "browser"


@pytest.fixture(scope="session")
def browser_tools() -> tuple[str, str]:
    """(Chromium's path, axe-core's source), installed when missing."""
    return ensure_chromium(), ensure_axe()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    """Playwright's sync API for one test module. Not longer: while it runs, its event loop
    is the main thread's, and the asyncio tests of the modules after it could not run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def open_browser(
    driver: Any,
    tools: tuple[str, str],
    profile: Path,
    allowed: set[str],
    artifacts: Path,
    **options: Any,
) -> Browser:
    """A new Chromium with a fresh profile (`--user-data-dir`) whose requests only reach
    `allowed` origins. `options` go to Playwright (viewport, color_scheme, ...)."""
    chromium, axe_source = tools
    options.setdefault("viewport", {"width": 1280, "height": 800})
    context = driver.chromium.launch_persistent_context(
        str(profile),
        executable_path=chromium,
        headless=True,
        args=CHROMIUM_FLAGS,
        **options,
    )
    guard = NetworkGuard(allowed)
    context.route("**/*", guard.handle)
    return Browser(context, guard, axe_source, artifacts)
