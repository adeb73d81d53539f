"""Building blocks every service's `create_app` uses: lifespan, health routes, error handlers.

A service given a `Runtime` (embedded mode) uses it and leaves closing its stores to the owner;
a service given none (split mode) opens its own stores from Settings, builds its runtime, and
closes the stores at shutdown.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig

from wheelyard.shared.backends import REQUIRED_PARTS, Backends
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.web.fastpath import HotHandlers, HotPaths
from wheelyard.shared.web.observe import Observe, RecordEndpoint
from wheelyard.shared.web.problems import install_error_handlers
from wheelyard.shared.web.runtime import Runtime

#: FastAPI's native OpenTelemetry, off: our observability is `wheelyard.shared.web.observe`
#: (Prometheus metrics, access lines), and FastAPI asks three global OpenTelemetry providers
#: whether they are configured on every request (about 5 % of a cached page's CPU time).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

StartHook = Callable[[FastAPI, Runtime], Awaitable[None]]

#: Where each service serves the OpenAPI document of its own routes. Not a public route (the
#: gateway dispatches no such path): the gateway reads it to merge one document for `/docs`.
SERVICE_OPENAPI = "/_wheelyard/openapi.json"


def health_router() -> APIRouter:
    """`GET /healthz`: liveness, the process answers (nothing else is checked: restarting a
    process cannot fix a database outage). `GET /readyz`: readiness, this process can serve:
    the database answers and its schema is this release's (else 503). A cache or blob-store
    outage is reported as `degraded` with the part named, still 200: requests are served
    without the cache, and all but downloads without the blob store, so taking every replica
    out of its Service for it would turn a partial outage into a total one. The gateway's
    readiness never depends on the services behind it (no cascade)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        backends: Backends = request.app.state.runtime.backends
        parts = await backends.readiness()
        errors = {part: err for part, err in parts.items() if err}
        failing = sorted(p for p in errors if p in REQUIRED_PARTS)
        degraded = sorted(p for p in errors if p not in REQUIRED_PARTS)
        body = {
            "status": "unavailable" if failing else "degraded" if degraded else "ready",
            "parts": {part: err or "ok" for part, err in sorted(parts.items())},
            "failing": failing,
            "degraded": degraded,
            "errors": errors,
        }
        if failing:
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse(body)

    return router


def settle_heap() -> None:
    """Move everything allocated while starting (modules, the app, its routes and models) out
    of the garbage collector's sight (`gc.freeze`), once the process is ready to serve.

    Measured here: with a few hundred thousand start-up objects, each full collection walked
    them all, pausing the event loop for 100-300 ms; requests that allocate more (a Redis
    round trip each) triggered those pauses often enough to make the p99 of a cached page
    200-300 ms and cap a Redis-backed process at a third of its throughput. What is frozen
    was going to live as long as the process anyway.
    """
    gc.collect()
    gc.freeze()


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
    service: str,
    title: str,
    routers: Sequence[APIRouter],
    runtime: Runtime | None = None,
    settings: Settings | None = None,
    hot_handlers: HotHandlers | None = None,
    on_start: StartHook | None = None,
    on_stop: StartHook | None = None,
) -> FastAPI:
    """A FastAPI app with the given routers, health routes, error handlers and a lifespan that
    provides `app.state.runtime` (shared or owned, see module docstring) and runs `on_start`
    after the stores are open and `on_stop` before they close. `hot_handlers` answer the hot
    read paths before the router (`wheelyard.shared.web.fastpath`); every request is observed
    (`wheelyard.shared.web.observe`, labelled `service`) unless an outer layer did already."""
    if settings is None:
        settings = runtime.backends.settings if runtime is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        owned = None if runtime is not None else await Backends.open(settings)
        try:
            if runtime is not None:
                current = runtime
            else:
                assert owned is not None  # opened above exactly when no runtime was given
                current = Runtime.build(owned)
            app.state.runtime = current
            if on_start is not None:
                await on_start(app, current)
            settle_heap()
            try:
                # A service sharing the gateway's runtime (embedded) is not the server's app.
                yield current.server_state() if runtime is None else {}
            finally:
                if on_stop is not None:
                    await on_stop(app, current)
        finally:
            if owned is not None:
                await owned.close()

    app = FastAPI(
        title=title,
        telemetry=NO_TELEMETRY,
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
    # Added innermost first: the last one added is the outermost.
    app.add_middleware(RecordEndpoint)
    if hot_handlers is not None:
        app.add_middleware(HotPaths, handlers=hot_handlers)
    add_observer(app, service, settings, assign_ids=False)
    return app


def add_observer(app: FastAPI, service: str, settings: Settings, *, assign_ids: bool) -> None:
    """Make `Observe` the outermost layer of `app` (see `wheelyard.shared.web.observe`)."""
    app.add_middleware(
        Observe,
        service=service,
        assign_ids=assign_ids,
        trust_request_id=settings.trust_proxy_headers,
        access_log=settings.access_log,
        log_format=settings.log_format,
        metrics_token=settings.metrics_token,
    )
