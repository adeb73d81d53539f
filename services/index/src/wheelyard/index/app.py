"""The index service's app: `create_app` is its one construction point."""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.index import handlers
from wheelyard.index.routes import router
from wheelyard.shared.app import build_service_app
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings
from wheelyard.shared.fastpath import HotPaths, simple_routes


def create_app(*, backends: Backends | None = None, settings: Settings | None = None) -> FastAPI:
    """The index service; shares `backends` when given (embedded), else opens its own."""
    app = build_service_app(
        title="Wheelyard index (hosted read path)",
        routers=[router, simple_routes(handlers)],
        backends=backends,
        settings=settings,
    )
    app.add_middleware(HotPaths, handlers=handlers)
    return app
