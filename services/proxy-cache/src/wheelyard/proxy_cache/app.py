"""The proxy_cache service's app: `create_app` is its one construction point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from wheelyard.proxy_cache.fastpath import ProxyFastPath, timeout_response
from wheelyard.proxy_cache.routes import router
from wheelyard.proxy_cache.service import ProxyService
from wheelyard.proxy_cache.upstream import UpstreamTimeout
from wheelyard.shared.app import build_service_app
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings


async def _start(app: FastAPI, backends: Backends) -> None:
    app.state.proxy = ProxyService(backends)


def create_app(*, backends: Backends | None = None, settings: Settings | None = None) -> FastAPI:
    """The proxy_cache service; shares `backends` when given (embedded), else opens its own."""
    app = build_service_app(
        title="Wheelyard proxy-cache (proxy and group repositories)",
        routers=[router],
        backends=backends,
        settings=settings,
        on_start=_start,
    )
    shared_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        # The shared lifespan opens backends and builds the ProxyService; this one also
        # stops its fetches and upstream connections at shutdown.
        async with shared_lifespan(application):
            try:
                yield
            finally:
                proxy = getattr(application.state, "proxy", None)
                if proxy is not None:
                    await proxy.aclose()

    app.router.lifespan_context = lifespan

    async def on_timeout(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UpstreamTimeout)
        return timeout_response(exc)

    app.add_exception_handler(UpstreamTimeout, on_timeout)
    app.add_middleware(ProxyFastPath)
    return app
