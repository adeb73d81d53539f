"""The upload service's app: `create_app` is its one construction point."""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.shared.config import Settings
from wheelyard.shared.web.app import build_service_app
from wheelyard.shared.web.runtime import Runtime
from wheelyard.upload.routes import router


def create_app(*, runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """The upload service; shares `runtime` when given (embedded), else builds its own."""
    return build_service_app(
        service="upload",
        title="Wheelyard upload (write path)",
        routers=[router],
        runtime=runtime,
        settings=settings,
    )
