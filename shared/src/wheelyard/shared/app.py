"""Building blocks every service's `create_app` uses: lifespan, health routes, error handlers.

A service given `Backends` (embedded mode) uses them and leaves closing to their owner; a
service given none (split mode) opens its own from Settings and closes them at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from wheelyard.shared.auth.internal_jwt import Verifier, keys_from_settings
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.db.registry import RepositoryDirectory
from wheelyard.shared.http import install_error_handlers
from wheelyard.shared.pagecache import PageCache

StartHook = Callable[[FastAPI, Backends], Awaitable[None]]


def health_router() -> APIRouter:
    """`GET /healthz` (the process is alive) and `GET /readyz` (every backend answers)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        backends: Backends = request.app.state.backends
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
    backends: Backends | None = None,
    settings: Settings | None = None,
    on_start: StartHook | None = None,
    on_stop: StartHook | None = None,
    docs: bool = False,
) -> FastAPI:
    """A FastAPI app with the given routers, health routes, error handlers and a lifespan
    that provides `app.state.backends` (shared or owned, see module docstring) and runs
    `on_start` after the backends are open and `on_stop` before they close."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backends is None
        current = backends or await Backends.open(settings or load_settings())
        app.state.backends = current
        app.state.settings = current.settings
        app.state.directory = RepositoryDirectory(current.sessions)
        app.state.pages = PageCache(current.cache)
        app.state.verifier = Verifier(keys_from_settings(current.settings, signing=False))
        try:
            if on_start is not None:
                await on_start(app, current)
            try:
                yield
            finally:
                if on_stop is not None:
                    await on_stop(app, current)
        finally:
            if owned:
                await current.close()

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    return app
