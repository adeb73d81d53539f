"""The proxy-cache service's app: `create_app` is its one construction point."""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.proxy_cache import handlers
from wheelyard.proxy_cache.routes import router
from wheelyard.proxy_cache.service import ProxyService
from wheelyard.shared.app import build_service_app
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings
from wheelyard.shared.fastpath import HotPaths, simple_routes


async def _start(app: FastAPI, backends: Backends) -> None:
    app.state.proxy = ProxyService(backends)


async def _stop(app: FastAPI, _backends: Backends) -> None:
    # Stop the fetches in flight and close the upstream connections.
    await app.state.proxy.aclose()


def create_app(*, backends: Backends | None = None, settings: Settings | None = None) -> FastAPI:
    """The proxy-cache service; shares `backends` when given (embedded), else opens its own."""
    app = build_service_app(
        title="Wheelyard proxy-cache (proxy and group repositories)",
        routers=[router, simple_routes(handlers)],
        backends=backends,
        settings=settings,
        on_start=_start,
        on_stop=_stop,
    )
    app.add_middleware(HotPaths, handlers=handlers)
    return app
