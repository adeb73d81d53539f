"""The proxy-cache service's app: `create_app` is its one construction point."""

from __future__ import annotations

from anyio import to_thread
from fastapi import FastAPI

from wheelyard.proxy_cache import handlers
from wheelyard.proxy_cache.routes import router
from wheelyard.proxy_cache.service import ProxyService
from wheelyard.shared.config import Settings
from wheelyard.shared.storage.tempdir import claim_temp_dir
from wheelyard.shared.web.app import build_service_app
from wheelyard.shared.web.fastpath import simple_routes
from wheelyard.shared.web.runtime import Runtime


async def _start(app: FastAPI, runtime: Runtime) -> None:
    proxy = ProxyService(runtime.backends, runtime.pages)
    # Spool files are unlinked as soon as they are created; a crash in between leaves one.
    app.state.spool_claim = await to_thread.run_sync(claim_temp_dir, proxy.files.spool_dir)
    app.state.proxy = proxy
    proxy.start()


async def _stop(app: FastAPI, _runtime: Runtime) -> None:
    # Stop the fetches in flight and close the upstream connections.
    await app.state.proxy.aclose()
    app.state.spool_claim.release()


def create_app(*, runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """The proxy-cache service; shares `runtime` when given (embedded), else builds its own."""
    return build_service_app(
        service="proxy-cache",
        title="Wheelyard proxy-cache (proxy and group repositories)",
        routers=[router, simple_routes(handlers)],
        runtime=runtime,
        settings=settings,
        hot_handlers=handlers,
        on_start=_start,
        on_stop=_stop,
    )
