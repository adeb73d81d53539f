"""The web interface walked in a real browser, as a person would: home -> search -> project ->
copy the install command -> sign in as admin -> create a private repository and a token ->
sign out -> the private repository is invisible. Every page is screenshotted and checked with
axe-core (no serious or critical violation), and no page reaches any host but the server."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from wheelyard.testing.browser import Browser
from wheelyard.testing.ui_env import ADMIN, UiEnv, described_wheel, upload


def visit(browser: Browser, page: Any, name: str) -> None:
    """Screenshot the page and require a clean accessibility report."""
    browser.screenshot(page, name)
    violations = browser.check_accessibility(page, name)
    assert not violations, (name, [(v["id"], v["impact"], v["help"]) for v in violations])


def test_walk_from_search_to_a_private_repository_and_back(
    browser: Browser, ui_env: UiEnv, tmp_path: Any
) -> None:
    url = ui_env.url
    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = browser.new_page()

    # Home: a browser at / lands on the web interface.
    page.goto(url + "/")
    assert page.url == url + "/ui/"
    assert page.get_by_role("heading", name="Repositories").is_visible()
    assert page.get_by_role("link", name="default/local").is_visible()
    visit(browser, page, "01-home")

    # Search for the demo project from the home page's search box.
    page.get_by_label("Search projects by name or summary").fill("greets")
    page.get_by_label("Search projects by name or summary").press("Enter")
    page.wait_for_url(re.compile(r"/ui/search\?q=greets"))
    result = page.get_by_role("link", name=ui_env.demo)
    assert result.is_visible()
    visit(browser, page, "02-search")

    # The project page: latest version (2.0 is yanked, so 1.1), README, files, versions.
    result.click()
    page.wait_for_url(re.compile(rf"/projects/{ui_env.demo}/$"))
    assert page.locator("main h1").first.inner_text().startswith(f"{ui_env.demo} 1.1")
    assert page.locator(".readme h1").inner_text() == "wheelyard-demo"
    assert page.get_by_text("Breaks greetings on Windows").is_visible()
    assert page.get_by_role("link", name="Source").is_visible()
    visit(browser, page, "03-project")

    # Copy the install command with one click.
    expected = (
        f"pip install --index-url {url}/repositories/default/local/simple/ {ui_env.demo}==1.1"
    )
    assert page.locator("#install-command").inner_text().strip() == expected
    page.get_by_role("button", name="Copy install command").click()
    page.get_by_role("button", name="Copied install command").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == expected

    # Sign in as the administrator, coming back to the project page.
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/signin"))
    visit(browser, page, "04-signin")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"/projects/{ui_env.demo}/$"))
    assert page.get_by_role("link", name="admin", exact=True).is_visible()
    cookie = next(c for c in browser.context.cookies() if c["name"] == "wheelyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # Create a private repository.
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    page.get_by_role("link", name="Admin", exact=True).click()
    visit(browser, page, "05-admin")
    page.get_by_role("link", name="New repository").click()
    visit(browser, page, "06-new-repository")
    page.get_by_label("Name", exact=True).fill(secret)
    page.get_by_label("Private: only users given access").check()
    page.get_by_role("button", name="Create repository").click()
    page.wait_for_url(re.compile(rf"/ui/repositories/default/{secret}/$"))
    assert page.locator(".badge-private").first.is_visible()
    visit(browser, page, "07-private-repository")

    # Something in it, to look for later.
    hidden = f"hidden-{uuid.uuid4().hex[:8]}"
    upload(url, described_wheel(tmp_path, hidden, "1.0", "# Hidden", summary="classified"), secret)

    # A token for it, shown once.
    page.get_by_role("link", name="Tokens").click()
    visit(browser, page, "08-tokens")
    page.get_by_label("Name").fill("ci uploads")
    page.get_by_label("Write: install and upload").check()
    page.get_by_label(f"default/{secret}").check()
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("wy_")
    visit(browser, page, "09-token-created")
    simple = f"{url}/repositories/default/{secret}/simple/{hidden}/"
    assert httpx.get(simple, auth=("__token__", token), timeout=30).status_code == 200

    # Sign out: the session ends on the server, and the private repository disappears.
    page.goto(url + "/ui/")
    assert page.get_by_role("link", name=f"default/{secret}").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(url + "/ui/")
    assert page.get_by_role("link", name="Sign in").is_visible()
    assert page.get_by_role("link", name=f"default/{secret}").count() == 0
    assert secret not in page.content() and hidden not in page.content()
    visit(browser, page, "10-home-signed-out")

    page.goto(f"{url}/ui/search?q={hidden}")
    assert page.get_by_role("heading", name=re.compile("0 results")).is_visible()
    page.goto(f"{url}/ui/search?q=classified")
    assert hidden not in page.content()
    visit(browser, page, "11-search-signed-out")

    for address in (
        f"{url}/ui/repositories/default/{secret}/",
        f"{url}/ui/repositories/default/{secret}/projects/{hidden}/",
    ):
        response = page.goto(address)
        assert response is not None and response.status == 404
        assert "does not exist" in page.content()
    visit(browser, page, "12-not-found")

    assert not browser.dialogs
    assert not browser.guard.refused, browser.guard.refused
