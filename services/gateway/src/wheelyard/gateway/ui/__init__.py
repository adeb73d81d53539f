"""The web interface: server-rendered pages under `/ui/` for browsing, searching, reading and
administering the registry, served by the gateway (which has the database and authenticates).

Pages are Jinja2 templates (`templates/`) with one stylesheet and a few lines of plain
JavaScript (`static/`: copy buttons, confirmations); every page reads and works without
JavaScript. Data comes from the shared domain queries, changes go through the same domain
functions as the management API. See `viewer` (sessions, CSRF), `render` (templates, headers),
`browse`, `account` and `admin` (the pages), `landing` (browsers at `/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from wheelyard.gateway.ui import account, admin, browse, landing
from wheelyard.gateway.ui.landing import BrowserLanding
from wheelyard.gateway.ui.render import STATIC_PREFIX, Pages
from wheelyard.shared.auth.sessions import SessionStore
from wheelyard.shared.cache import Cache


class _Assets(StaticFiles):
    """The interface's static files. Pages link them with a digest of their content
    (`?v=...`), so such a URL never changes meaning and browsers may keep it for a year."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        scope = kwargs.get("scope", args[2] if len(args) > 2 else {})
        if b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@dataclass(frozen=True)
class UiState:
    """What the web interface keeps per process (`app.state.ui`)."""

    pages: Pages
    sessions: SessionStore


def start_ui(app: FastAPI, cache: Cache) -> None:
    """Make the web interface's per-process state (called by the gateway's lifespan)."""
    app.state.ui = UiState(pages=Pages(), sessions=SessionStore(cache))


def install_ui(app: FastAPI) -> None:
    """Add the web interface's routes, its static files and the browser landing redirects."""
    for module in (browse, account, admin, landing):
        app.include_router(module.router)
    app.mount(
        STATIC_PREFIX.rstrip("/"),
        _Assets(packages=[("wheelyard.gateway.ui", "static")]),
        name="ui-static",
    )
    app.add_middleware(BrowserLanding)
