"""Pieces of the web interface that need no server: README rendering, browser detection,
sessions, the merged OpenAPI document, upstream health states."""

from __future__ import annotations

import time

import pytest

from wheelyard.gateway.apidocs import merge_openapi
from wheelyard.gateway.ui.landing import landing_page, wants_web_page
from wheelyard.gateway.ui.readme import render_html
from wheelyard.shared.auth.sessions import SessionStore
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.domain.upstream_health import UpstreamHealth


def test_markdown_is_rendered_and_sanitized() -> None:
    html = render_html(
        "# Title\n\n```python\nx = 1\n```\n\n<script>alert(1)</script>\n"
        '[a](javascript:alert(1)) <img src="x" onerror="alert(1)">\n'
        '<img src="https://tracker.example/p.png" alt="pixel"> <img src="docs/local.png">',
        "text/markdown; charset=UTF-8; variant=GFM",
    )
    assert "<h1" in html and "Title" in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert "tracker.example" not in html and 'alt="pixel"' in html
    assert 'src="docs/local.png"' in html  # on this server: harmless
    assert 'lang="python"' not in html  # a programming language is not a human one
    assert '<a href="#' not in html  # no empty self-links on headings


def test_commonmark_variant_and_plain_text() -> None:
    assert "<em>x</em>" in render_html("*x*", "text/markdown; variant=CommonMark")
    plain = render_html("<b>not bold</b>\nline two", "text/plain")
    assert "&lt;b&gt;" in plain and "<b>" not in plain


def test_rst_is_the_default_and_falls_back_to_text() -> None:
    assert "<h1" in render_html("Title\n=====\n\nBody *em*.", None)
    assert "<em>em</em>" in render_html("Title\n=====\n\nBody *em*.", "text/x-rst")
    broken = render_html("Title\n===\n\n.. raw:: html\n\n   <script>alert(1)</script>\n", None)
    assert "<script" not in broken and "&lt;script&gt;" in broken


@pytest.mark.parametrize(
    ("accept", "browser"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("text/html", True),
        (
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
            "text/html; q=0.01",
            False,
        ),
        ("*/*", False),
        ("", False),
        ("application/json", False),
    ],
)
def test_only_browsers_are_sent_to_the_web_interface(accept: str, browser: bool) -> None:
    assert wants_web_page(accept) is browser


def test_landing_pages() -> None:
    assert landing_page("/") == "/ui/"
    assert landing_page("/repositories/default/local/") == "/ui/repositories/default/local/"
    assert landing_page("/repositories/default/local/simple/") is None
    assert landing_page("/api/v1/users") is None


async def test_sessions_start_find_end_and_expire() -> None:
    cache = MemoryCache()
    store = SessionStore(cache, lifetime=60)
    session_id, session = await store.start("alice", 123)
    found = await store.find(session_id)
    assert found == session and found.username == "alice" and found.password_changed == 123
    assert len(session.csrf) >= 40 and session.csrf != session_id
    assert await store.find(session_id + "x") is None
    assert await store.find("a" * 500) is None
    assert await store.find(None) is None
    await store.end(session_id)
    assert await store.find(session_id) is None
    short = SessionStore(cache, lifetime=1)
    expiring, _ = await short.start("bob", 1)
    time.sleep(1.1)
    assert await short.find(expiring) is None


def test_merged_openapi_keeps_the_gateway_and_adds_the_services() -> None:
    base = {
        "openapi": "3.1.0",
        "paths": {"/api/v1/users": {"get": {"summary": "users"}}},
        "components": {"schemas": {"Shared": {"type": "object"}}},
    }
    index = {
        "paths": {
            "/api/v1/search": {"get": {"summary": "search"}},
            "/api/v1/users": {"get": {"summary": "not this one"}},
        },
        "components": {"schemas": {"Shared": {"type": "object"}, "Hit": {"type": "object"}}},
    }
    upload = {"paths": {"/upload": {"post": {"summary": "up", "tags": ["own"]}}}}
    merged = merge_openapi(base, {"index": index, "upload": upload})
    assert merged["paths"]["/api/v1/users"]["get"]["summary"] == "users"
    assert merged["paths"]["/api/v1/search"]["get"]["tags"] == ["index"]
    assert merged["paths"]["/upload"]["post"]["tags"] == ["own"]
    assert set(merged["components"]["schemas"]) == {"Shared", "Hit"}
    assert "/api/v1/search" not in base["paths"]  # the gateway's own document is untouched


def test_upstream_health_states() -> None:
    now = time.time()
    assert UpstreamHealth().state(now) == "ok"
    assert UpstreamHealth(failures=1).state(now) == "failing"
    assert UpstreamHealth(failures=3, open_until=now + 10).state(now) == "open"
    assert UpstreamHealth(failures=3, open_until=now - 1).state(now) == "failing"
