"""The proxy_cache service's app: `create_app` is its one construction point."""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.proxy_cache.routes import router
from wheelyard.shared.app import build_service_app
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings


def create_app(*, backends: Backends | None = None, settings: Settings | None = None) -> FastAPI:
    """The proxy_cache service; shares `backends` when given (embedded), else opens its own."""
    return build_service_app(
        title="Wheelyard proxy-cache (proxy and group repositories)",
        routers=[router],
        backends=backends,
        settings=settings,
    )
