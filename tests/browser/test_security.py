"""Attacks on the web interface, in the browser: a hostile README executes nothing and reaches
no other host; another site cannot make a signed-in browser post a form; /docs works with no
network beyond Wheelyard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.browser import Browser, open_browser
from wheelyard.testing.ui_env import ADMIN, UiEnv

DANGEROUS_TAGS = "script, iframe, object, embed, form, meta, base, link, style, video, audio, svg"


def _inspect_readme(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """(dangerous) => {
            const readme = document.querySelector('.readme');
            const all = [...readme.querySelectorAll('*')];
            return {
                dangerous: [...readme.querySelectorAll(dangerous)].map(e => e.outerHTML),
                handlers: all.flatMap(e => [...e.attributes].filter(a => a.name.startsWith('on'))
                                            .map(a => e.tagName + ' ' + a.name)),
                scriptLinks: [...document.querySelectorAll('a[href]')]
                    .map(a => a.getAttribute('href'))
                    .filter(h => !/^(https?:|mailto:|\\/|#|\\?)/i.test(h.trim())),
                styled: all.filter(e => e.hasAttribute('style')).map(e => e.outerHTML),
                foreignImages: [...document.images].map(i => i.src)
                    .filter(s => s && !s.startsWith(location.origin)),
                bold: readme.querySelector('b') && readme.querySelector('b').textContent,
            };
        }""",
        DANGEROUS_TAGS,
    )


@pytest.mark.parametrize("csp", ["enforced", "bypassed"])
def test_a_hostile_readme_runs_nothing_and_reaches_no_other_host(
    playwright_driver: Any,
    browser_tools: tuple[str, str],
    ui_env: UiEnv,
    tmp_path: Path,
    browser_artifacts: Path,
    csp: str,
) -> None:
    """With the page's Content-Security-Policy bypassed too: the sanitizer alone suffices."""
    browser = open_browser(
        playwright_driver,
        browser_tools,
        tmp_path / "profile",
        {ui_env.url},
        browser_artifacts,
        bypass_csp=csp == "bypassed",
    )
    try:
        page = browser.new_page()
        page.goto(f"{ui_env.url}/ui/repositories/default/local/projects/{ui_env.hostile}/")
        page.wait_for_load_state("networkidle")
        found = _inspect_readme(page)
        assert found["dangerous"] == []
        assert found["handlers"] == []
        assert found["scriptLinks"] == [], found["scriptLinks"]
        assert found["styled"] == []
        assert found["foreignImages"] == []
        assert found["bold"] == "bold", "harmless raw HTML is kept"
        # Poke everything that could run a handler: hover and click each README link and the
        # project links (one of which says javascript:).
        for link in page.locator(".readme a, .side-column a").all():
            link.hover()
            link.click(modifiers=["Control"], no_wait_after=True)
        for summary in page.locator(".readme details summary").all():
            summary.click()
        page.wait_for_timeout(300)
        browser.screenshot(page, f"hostile-readme-csp-{csp}")
        assert browser.dialogs == []
        foreign = [u for u in browser.guard.requested if not u.startswith(ui_env.url)]
        assert foreign == [], foreign
        assert page.evaluate("() => document.title").startswith(ui_env.hostile)
    finally:
        browser.context.close()


class _AttackerPage(BaseHTTPRequestHandler):
    form = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.form)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker_site() -> Iterator[tuple[type[_AttackerPage], int]]:
    handler = type("Attacker", (_AttackerPage,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def token_names(env: UiEnv) -> list[str]:
    """The names of the administrator's tokens, from the API."""
    response = httpx.get(f"{env.url}/api/v1/tokens", auth=ADMIN, timeout=30)
    return [t["name"] for t in response.json()]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_another_site_cannot_post_a_form_with_the_session(
    playwright_driver: Any,
    browser_tools: tuple[str, str],
    ui_env: UiEnv,
    tmp_path: Path,
    browser_artifacts: Path,
    attacker_site: tuple[type[_AttackerPage], int],
    host: str,
) -> None:
    """The attacker's page is another origin on the same site (127.0.0.1, another port: the
    session cookie goes along) or another site (localhost: SameSite keeps the cookie home).
    Its form is refused either way, and no token is made."""
    handler, port = attacker_site
    attacker = f"http://{host}:{port}"
    name = f"stolen-{host}"
    handler.form = f"""<!doctype html><html><body>
      <form id="f" method="post" action="{ui_env.url}/ui/tokens">
        <input name="name" value="{name}"><input name="scope" value="write">
        <input name="repositories" value="default/local">
        <input name="csrf_token" value="guessed">
      </form><script>document.getElementById('f').submit()</script>
    </body></html>""".encode()
    browser = open_browser(
        playwright_driver,
        browser_tools,
        tmp_path / "profile",
        {ui_env.url, attacker},
        browser_artifacts,
    )
    try:
        page = browser.new_page()
        page.goto(ui_env.url + "/ui/signin")
        page.get_by_label("Username").fill(ADMIN[0])
        page.get_by_label("Password").fill(ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(ui_env.url + "/ui/")
        with page.expect_response(f"{ui_env.url}/ui/tokens") as posted:
            page.goto(attacker + "/")
        assert posted.value.status == 403
        assert name not in token_names(ui_env)
        browser.screenshot(page, f"csrf-refused-{host}")
        # The same browser is still signed in and may create tokens from Wheelyard's own page.
        page.goto(ui_env.url + "/ui/tokens")
        page.get_by_label("Name").fill(f"own-{host}")
        page.get_by_label("default/local").check()
        page.get_by_role("button", name="Create token").click()
        assert page.locator("#new-token").inner_text().startswith("wy_")
    finally:
        browser.context.close()


def test_docs_render_with_no_network_beyond_wheelyard(browser: Browser, ui_env: UiEnv) -> None:
    page = browser.new_page()
    page.goto(ui_env.url + "/docs")
    page.locator(".swagger-ui .info .title").wait_for(timeout=30_000)
    assert "Wheelyard" in page.locator(".swagger-ui .info .title").inner_text()
    # The services' routes are documented too: uploads, yanks, deletions, search.
    page.locator(".opblock-summary-path").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    joined = "\n".join(paths)
    for fragment in ("/api/v1/search", "/yank", "/simple/{project}/", "/api/v1/tokens"):
        assert fragment in joined, fragment
    page.wait_for_load_state("networkidle")
    browser.screenshot(page, "docs")
    assert browser.guard.refused == [], browser.guard.refused
    assert all(u.startswith(ui_env.url) for u in browser.guard.requested)
