"""The upload service's app: `create_app` is its one construction point."""

from __future__ import annotations

from anyio import to_thread
from fastapi import FastAPI

from wheelyard.shared.config import Settings
from wheelyard.shared.storage.tempdir import claim_temp_dir
from wheelyard.shared.web.app import build_service_app
from wheelyard.shared.web.runtime import Runtime
from wheelyard.upload.routes import router
from wheelyard.upload.service import spool_dir


async def _start(app: FastAPI, runtime: Runtime) -> None:
    # Spool files a crash left behind are removed before this process spools anything.
    directory = spool_dir(runtime.backends.settings)
    app.state.spool_claim = await to_thread.run_sync(claim_temp_dir, directory)


async def _stop(app: FastAPI, _runtime: Runtime) -> None:
    app.state.spool_claim.release()


def create_app(*, runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """The upload service; shares `runtime` when given (embedded), else builds its own."""
    return build_service_app(
        service="upload",
        title="Wheelyard upload (write path)",
        routers=[router],
        runtime=runtime,
        settings=settings,
        on_start=_start,
        on_stop=_stop,
    )
