"""Rendering pages of the web interface: the Jinja2 environment, the response headers every
page carries, and error pages.

Templates autoescape everything; the only markup inserted unescaped is a README, which
`wheelyard.gateway.ui.readme` has sanitized. Every page carries a Content-Security-Policy
that allows scripts, styles, images and connections from this server only, so even markup
that slipped through a sanitizer could neither run a script nor reach another host.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, RedirectResponse, Response

from wheelyard.gateway.management.repositories import without_userinfo
from wheelyard.gateway.ui import urls
from wheelyard.gateway.ui.viewer import CSRF_FIELD, Viewer, set_cookies, viewer_of
from wheelyard.shared.errors import RateLimited, Unauthenticated, WheelyardError
from wheelyard.shared.web.base_url import shareable_base
from wheelyard.shared.web.problems import DATABASE_DOWN, status_for

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
STATIC_PREFIX = "/ui/static/"


def _static_versions() -> dict[str, str]:
    # Asset URLs carry a digest of the content, so browsers may keep them for a year.
    folder = resources.files("wheelyard.gateway.ui") / "static"
    return {
        entry.name: hashlib.sha256(entry.read_bytes()).hexdigest()[:12]
        for entry in folder.iterdir()
        if entry.is_file()
    }


def filesize(size: int | None) -> str:
    """`1.2 MiB`-style sizes."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def when(moment: datetime | float | None) -> str:
    """A UTC timestamp, to the minute."""
    if moment is None:
        return "never"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def without_credentials(url: str | None) -> str:
    """`url` without a `user:password@` part (upstream URLs may carry one)."""
    return without_userinfo(url) if url else ""


def iso(moment: datetime | float | None) -> str:
    """The machine-readable form of a timestamp (for `<time datetime>`)."""
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class Pages:
    """The web interface's templates, one environment per process."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("wheelyard.gateway.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        versions = _static_versions()
        self.env.filters.update(
            filesize=filesize, when=when, iso=iso, without_credentials=without_credentials
        )
        self.env.globals.update(
            static=lambda name: f"{STATIC_PREFIX}{name}?v={versions.get(name, '0')}",
            urls=urls,
            quote=quote,
            urlencode=urlencode,
            csrf_field=CSRF_FIELD,
        )

    def render(
        self,
        request: Request,
        viewer: Viewer,
        template: str,
        *,
        status: int = 200,
        private: bool = False,
        store: bool = True,
        **context: Any,
    ) -> HTMLResponse:
        """A page: `private` for anything only this viewer may see (always when signed in);
        `store=False` for pages that must not be kept even by the browser (a new token).
        A page whose links carry a Host the operator did not allow is never shared either
        (`wheelyard.shared.web.base_url`): install snippets hold the viewer's base URL."""
        body = self.env.get_template(template).render(
            viewer=viewer, path=request.url.path, query=str(request.url.query), **context
        )
        response = HTMLResponse(body, status_code=status)
        headers = response.headers
        if not store:
            headers["Cache-Control"] = "private, no-store"
        elif (
            private
            or viewer.signed_in
            or viewer.new_csrf_cookie is not None
            or "authorization" in request.headers
            or not shareable_base(request, request.app.state.runtime.backends.settings)
        ):
            headers["Cache-Control"] = "private, no-cache"
        else:
            headers["Cache-Control"] = "public, max-age=0, must-revalidate"
        headers["Vary"] = "Cookie, Authorization"
        headers["Content-Security-Policy"] = CSP
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        set_cookies(response, viewer)
        return response


def pages_of(request: Request) -> Pages:
    """The process's templates."""
    pages: Pages = request.app.state.ui.pages
    return pages


async def error_page(request: Request, exc: Exception) -> Response | None:
    """The HTML page for a domain error or an outage (None for anything else, a bug)."""
    if isinstance(exc, WheelyardError):
        status = status_for(exc)
        message = exc.message
    elif isinstance(exc, RequestValidationError):
        fields = ", ".join(str(e["loc"][-1]) for e in exc.errors() if e.get("loc"))
        status, message = 400, f"This address has an invalid value ({fields})."
    elif isinstance(exc, DATABASE_DOWN):
        status, message = 503, "The database is unavailable; try again in a moment."
    else:
        return None
    viewer = await viewer_of(request)
    if isinstance(exc, Unauthenticated) and request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/signin?{urlencode({'next': target})}", status_code=303)
    response = pages_of(request).render(
        request,
        viewer,
        "error.html",
        status=status,
        private=True,
        message=message,
        status_code=status,
        title=HTTPStatus(status).phrase,
    )
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    elif status == 503:
        response.headers["Retry-After"] = "5"
    return response


class UiRoute(APIRoute):
    """A route of the web interface: domain errors become HTML pages, not problem JSON.

    Its name, which labels its requests' metrics (`wheelyard.shared.web.observe`), is its path
    template (`/ui/repositories/{storage}/{repo}/`): bounded whatever the paths, and never the
    name of an API route (a function called `search` here and there)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["name"] = path
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                page = await error_page(request, exc)
                if page is None:
                    raise
                return page

        return handle
