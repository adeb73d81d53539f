"""The index service's app: `create_app` is its one construction point."""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.index import handlers
from wheelyard.index.routes import router
from wheelyard.shared.config import Settings
from wheelyard.shared.web.app import build_service_app
from wheelyard.shared.web.fastpath import simple_routes
from wheelyard.shared.web.runtime import Runtime


def create_app(*, runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """The index service; shares `runtime` when given (embedded), else builds its own."""
    return build_service_app(
        service="index",
        title="Wheelyard index (hosted read path)",
        routers=[router, simple_routes(handlers)],
        runtime=runtime,
        settings=settings,
        hot_handlers=handlers,
    )
