"""Building blocks every service's `create_app` uses: lifespan, health routes, error handlers.

A service given a `Runtime` (embedded mode) uses it and leaves closing its stores to the owner;
a service given none (split mode) opens its own stores from Settings, builds its runtime, and
closes the stores at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.web.problems import install_error_handlers
from wheelyard.shared.web.runtime import Runtime

StartHook = Callable[[FastAPI, Runtime], Awaitable[None]]


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
            if runtime is not None:
                current = runtime
            else:
                assert owned is not None  # opened above exactly when no runtime was given
                current = Runtime.build(owned)
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

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    return app
