"""The proxy-cache's hot paths as plain ASGI: simple pages and file downloads.

As in the index service, FastAPI's routing and dependency solving would cost more than serving
a cached page, so GET/HEAD of pages and files are answered here by the same handlers the
routes use; everything else (slash-less redirects, the cache API) falls through to FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wheelyard.proxy_cache import handlers
from wheelyard.proxy_cache.upstream import UpstreamTimeout
from wheelyard.shared.http import response_for_exception

_SIMPLE = re.compile(r"^/repositories/([^/]+)/([^/]+)/simple/(?:([^/]+)/)?$")
_FILE = re.compile(r"^/repositories/([^/]+)/([^/]+)/([^/]+)/([^/]+)/([^/]+)$")
_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".metadata")

Handler = Callable[[], Awaitable[Response]]


def timeout_response(exc: UpstreamTimeout) -> Response:
    """504 Gateway Timeout as RFC 9457 problem+json (the shared mapping knows only 502)."""
    body = {"type": "about:blank", "title": "Gateway Timeout", "status": 504, "detail": exc.message}
    return JSONResponse(body, status_code=504, media_type="application/problem+json")


class ProxyFastPath:
    """ASGI middleware answering the hot GET/HEAD routes without FastAPI's router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            handler = _route(Request(scope, receive), scope["path"])
            if handler is not None:
                try:
                    response = await handler()
                except UpstreamTimeout as exc:
                    response = timeout_response(exc)
                except Exception as exc:
                    mapped = response_for_exception(exc)
                    if mapped is None:
                        raise
                    response = mapped
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route(request: Request, path: str) -> Handler | None:
    match = _SIMPLE.match(path)
    if match:
        storage, repo, project = match.groups()
        if project is None:
            return lambda: handlers.simple_root(request, storage, repo)
        if canonicalize_name(project) == project:  # otherwise the router redirects
            return lambda: handlers.simple_project(request, storage, repo, project)
        return None
    match = _FILE.match(path)
    if match and match.group(5).endswith(_DIST_SUFFIXES):
        storage, repo, project, version, filename = match.groups()
        return lambda: handlers.download(request, storage, repo, project, version, filename)
    return None
