"""Building blocks every service's `create_app` uses: lifespan, health routes, error handlers.

A service given a `Runtime` (embedded mode) uses it and leaves closing its stores to the owner;
a service given none (split mode) opens its own stores from Settings, builds its runtime, and
closes the stores at shutdown.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.web.problems import install_error_handlers
from wheelyard.shared.web.runtime import Runtime

StartHook = Callable[[FastAPI, Runtime], Awaitable[None]]

#: Where each service serves the OpenAPI document of its own routes. Not a public route (the
#: gateway dispatches no such path): the gateway reads it to merge one document for `/docs`.
SERVICE_OPENAPI = "/_wheelyard/openapi.json"


def health_router() -> APIRouter:
    """`GET /healthz` (the process is alive) and `GET /readyz` (every backend answers)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        backends: Backends = request.app.state.runtime.backends
        parts = await backends.readiness()
        failing = {part: err for part, err in parts.items() if err}
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": sorted(failing), "errors": failing},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return JSONResponse({"status": "ready", "parts": sorted(parts)})

    return router


def _documented_without_head(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The app's OpenAPI document, HEAD left out: it is implied by GET (RFC 9110 §9.3.2), and
    FastAPI documents a route taking both twice under one operation id (and warns so)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
                document = generate()
            for operations in document.get("paths", {}).values():
                operations.pop("head", None)
            app.openapi_schema = document
        return app.openapi_schema

    return openapi


def build_service_app(
    *,
    title: str,
    routers: Sequence[APIRouter],
    runtime: Runtime | None = None,
    settings: Settings | None = None,
    on_start: StartHook | None = None,
    on_stop: StartHook | None = None,
) -> FastAPI:
    """A FastAPI app with the given routers, health routes, error handlers and a lifespan that
    provides `app.state.runtime` (shared or owned, see module docstring) and runs `on_start`
    after the stores are open and `on_stop` before they close."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None if runtime is not None else await Backends.open(settings or load_settings())
        try:
            current = runtime or Runtime.build(owned)  # type: ignore[arg-type]
            app.state.runtime = current
            if on_start is not None:
                await on_start(app, current)
            try:
                yield
            finally:
                if on_stop is not None:
                    await on_stop(app, current)
        finally:
            if owned is not None:
                await owned.close()

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=SERVICE_OPENAPI,
    )
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    app.openapi = _documented_without_head(app)  # type: ignore[method-assign]
    return app
