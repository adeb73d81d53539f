"""Every other page of the web interface in the browser: screenshots, axe-core in the light and
the dark theme, readable without JavaScript, usable from the keyboard, fitting a phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wheelyard.testing.browser import Browser, open_browser
from wheelyard.testing.ui_env import ADMIN, UiEnv


def visit(browser: Browser, page: Any, url: str, name: str) -> Any:
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    browser.screenshot(page, name)
    violations = browser.check_accessibility(page, name)
    assert not violations, (name, [(v["id"], v["impact"], v["help"]) for v in violations])
    return response


def sign_in(page: Any, url: str) -> None:
    page.goto(url + "/ui/signin")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/ui/")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_is_accessible_in_both_themes(
    playwright_driver: Any,
    browser_tools: tuple[str, str],
    ui_env: UiEnv,
    tmp_path: Path,
    browser_artifacts: Path,
    scheme: str,
) -> None:
    browser = open_browser(
        playwright_driver,
        browser_tools,
        tmp_path / "profile",
        {ui_env.url},
        browser_artifacts,
        color_scheme=scheme,
    )
    try:
        page = browser.new_page()
        url, demo, proxied = ui_env.url, ui_env.demo, ui_env.proxied
        assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") is (
            scheme == "dark"
        )
        local = f"{url}/ui/repositories/default/local"
        pypi = f"{url}/ui/repositories/default/pypi"
        wheel = f"{demo.replace('-', '_')}-1.0-py3-none-any.whl"
        anonymous = {
            "home": f"{url}/ui/",
            "repository-hosted": f"{local}/",
            "repository-proxy": f"{pypi}/",
            "repository-group": f"{url}/ui/repositories/default/all/",
            "project": f"{local}/projects/{demo}/",
            "version-yanked": f"{local}/projects/{demo}/2.0/",
            "file": f"{local}/projects/{demo}/1.0/files/{wheel}",
            "proxied-project": f"{pypi}/projects/{proxied}/",
            "proxied-file": f"{pypi}/projects/{proxied}/1.0/files/"
            f"{proxied.replace('-', '_')}-1.0.tar.gz",
            "signin": f"{url}/ui/signin",
        }
        for name, address in anonymous.items():
            visit(browser, page, address, f"{scheme}-{name}")
        sign_in(page, url)
        signed_in = {
            "account": f"{url}/ui/account",
            "tokens": f"{url}/ui/tokens",
            "admin": f"{url}/ui/admin/",
            "settings": f"{local}/settings",
            "settings-proxy": f"{pypi}/settings",
            "users": f"{url}/ui/admin/users",
            "user": f"{url}/ui/admin/users/admin",
            "audit": f"{url}/ui/admin/audit",
            "audit-filtered": f"{url}/ui/admin/audit?action=auth.login",
            "repository-proxy-admin": f"{pypi}/",
        }
        for name, address in signed_in.items():
            visit(browser, page, address, f"{scheme}-{name}")
        assert not browser.dialogs
        assert not browser.guard.refused, browser.guard.refused
    finally:
        browser.context.close()


def test_pages_read_and_sign_in_without_javascript(
    playwright_driver: Any,
    browser_tools: tuple[str, str],
    ui_env: UiEnv,
    tmp_path: Path,
    browser_artifacts: Path,
) -> None:
    browser = open_browser(
        playwright_driver,
        browser_tools,
        tmp_path / "profile",
        {ui_env.url},
        browser_artifacts,
        java_script_enabled=False,
    )
    try:
        page = browser.new_page()
        page.goto(f"{ui_env.url}/ui/repositories/default/local/projects/{ui_env.demo}/")
        assert page.locator("#install-command").is_visible()
        assert page.locator(".readme").inner_text().startswith("wheelyard-demo")
        # The copy button needs JavaScript, so without it there is none to press.
        assert not page.get_by_role("button", name="Copy install command").is_visible()
        browser.screenshot(page, "nojs-project")
        sign_in(page, ui_env.url)
        assert page.get_by_role("button", name="Sign out").is_visible()
    finally:
        browser.context.close()


def test_keyboard_reaches_the_content_first_and_focus_is_visible(
    browser: Browser, ui_env: UiEnv
) -> None:
    page = browser.new_page()
    page.goto(f"{ui_env.url}/ui/repositories/default/local/projects/{ui_env.demo}/")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused == "Skip to content"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # Then Tab walks on into the page: the breadcrumb's first link.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Repositories"


@pytest.mark.parametrize("path", ["/ui/", "/ui/repositories/default/local/projects/{demo}/"])
def test_pages_fit_a_phone_screen(
    playwright_driver: Any,
    browser_tools: tuple[str, str],
    ui_env: UiEnv,
    tmp_path: Path,
    browser_artifacts: Path,
    path: str,
) -> None:
    browser = open_browser(
        playwright_driver,
        browser_tools,
        tmp_path / "profile",
        {ui_env.url},
        browser_artifacts,
        viewport={"width": 375, "height": 740},
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = browser.new_page()
        page.goto(ui_env.url + path.format(demo=ui_env.demo))
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width}px wide on a 375px screen"
        name = "phone-" + re.sub(r"[^a-z]+", "-", path.format(demo="demo")).strip("-")
        browser.screenshot(page, name)
        assert not browser.check_accessibility(page, name)
    finally:
        browser.context.close()
