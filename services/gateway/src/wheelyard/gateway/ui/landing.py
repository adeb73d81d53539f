"""Browsers that open a registry address meant for installers land on the web interface.

`GET /` and a repository's base URL (`/repositories/<storage>/<repo>/`, the URL twine and uv
publish to, which people paste into a browser) redirect to the matching page of the web
interface, but only for a request that asks for a web page: one whose Accept names
`text/html` and none of the simple API's own types (pip and uv name them). Every other
request passes untouched, so installers and API clients get exactly what they got before.

The project URLs that publishers print after an upload (the route table's
`PROJECT_PAGE_REDIRECT`: hatch's `<repository>/<project>/<version>/`, flit's
`<repository>/<project>`) mean nothing else, so `router` redirects them whatever the Accept
header, to the project's page (which answers a project the caller may not see exactly like a
missing one: the redirect itself says nothing about what exists).
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from wheelyard.gateway.ui import urls
from wheelyard.shared import routes

router = APIRouter(include_in_schema=False)


async def _to_project(storage: str, repo: str, project: str) -> RedirectResponse:
    return RedirectResponse(urls.project(storage, repo, project), status_code=303)


async def _to_version(storage: str, repo: str, project: str, version: str) -> RedirectResponse:
    return RedirectResponse(urls.version(storage, repo, project, version), status_code=303)


# The dispatcher leaves these paths to the gateway (their target is the gateway itself).
for _template in routes.PROJECT_PAGE_REDIRECT.templates:
    _endpoint = _to_version if "{version}" in _template else _to_project
    router.add_api_route(_template, _endpoint, methods=sorted(routes.READ))


_REPOSITORY_ROOT = re.compile(r"^/repositories/([^/]+)/([^/]+)/?$")


def wants_web_page(accept: str) -> bool:
    """True for a browser's Accept header (HTML, and no simple-API media type)."""
    accept = accept.lower()
    return "text/html" in accept and "application/vnd.pypi.simple" not in accept


def landing_page(path: str) -> str | None:
    """The web-interface page for `path`, or None when `path` has none."""
    if path == "/":
        return urls.HOME
    found = _REPOSITORY_ROOT.match(path)
    if found is not None:
        return urls.repository(found.group(1), found.group(2))
    return None


class BrowserLanding:
    """ASGI middleware: the redirects of the module docstring, before anything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            target = landing_page(scope["path"])
            if target is not None:
                accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
                if wants_web_page(accept.decode("latin-1")):
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 303,
                            "headers": [
                                (b"location", target.encode("latin-1")),
                                (b"vary", b"Accept"),
                                (b"content-length", b"0"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": b""})
                    return
        await self.app(scope, receive, send)
