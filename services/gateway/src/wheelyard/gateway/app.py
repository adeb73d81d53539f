"""The gateway app: its own routes (health, management API, API docs, web interface) plus
dispatch to the services.

`create_app` is the one construction point. Given a `services` factory (embedded mode) the
services' apps are built on the gateway's backends and their lifespans are entered here, since
Starlette does not run the lifespans of apps it merely calls. Without one (split mode) each
service is reached through a streaming HTTP forwarder configured by WHEELYARD_*_URL.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from wheelyard.gateway.apidocs import install_api_docs
from wheelyard.gateway.dispatch import Dispatcher, Targets, kinds_from
from wheelyard.gateway.management import router as management_router
from wheelyard.gateway.middleware import GatewayMiddleware, GatewayState
from wheelyard.gateway.targets import Forwarder
from wheelyard.gateway.ui import install_ui, start_ui
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.internal_jwt import Minter, keys_from_settings
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.db.migrate import upgrade_database_async
from wheelyard.shared.domain.bootstrap import bootstrap
from wheelyard.shared.errors import ConfigurationError
from wheelyard.shared.web.app import health_router
from wheelyard.shared.web.problems import install_error_handlers
from wheelyard.shared.web.runtime import Runtime

log = logging.getLogger(__name__)

#: Builds (index, upload, proxy_cache) apps on the gateway's runtime: embedded mode.
ServiceFactory = Callable[[Runtime], tuple[FastAPI, FastAPI, FastAPI]]


def create_app(
    *,
    backends: Backends | None = None,
    settings: Settings | None = None,
    services: ServiceFactory | None = None,
) -> FastAPI:
    """The gateway. See the module docstring for embedded vs split mode."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            current = backends
            if current is None:
                current = await Backends.open(settings or load_settings())
                stack.push_async_callback(current.close)
            await prepare_database(current)
            # The key pair first: in embedded mode the services verify with its public half.
            keys = keys_from_settings(current.settings, signing=True)
            runtime = Runtime.build(current, keys)
            app.state.runtime = runtime
            targets = await _targets(stack, runtime, services)
            app.state.authenticator = Authenticator(current.sessions, current.cache, keys)
            start_ui(app, current.cache)
            app.state.gateway = GatewayState(
                authenticator=app.state.authenticator,
                minter=Minter(keys),
                dispatcher=Dispatcher(targets, kinds_from(runtime.directory)),
                trust_proxy_headers=current.settings.trust_proxy_headers,
            )
            yield

    app = FastAPI(
        title="Wheelyard",
        description="A private Python package registry.",
        lifespan=lifespan,
        docs_url=None,  # served by `install_api_docs`, from local files
        redoc_url=None,
        openapi_url=None,  # likewise, merged with the services' routes
    )
    install_error_handlers(app)
    app.include_router(health_router())
    app.include_router(management_router)
    install_api_docs(app)
    app.add_middleware(GatewayMiddleware)
    install_ui(app)  # after the middleware: its browser redirects come first
    return app


async def prepare_database(backends: Backends) -> None:
    """Upgrade the schema and bootstrap defaults; prints a generated admin password once."""
    await upgrade_database_async(backends.settings.effective_database_url)
    for attempt in range(2):
        try:
            async with backends.sessions() as session:
                generated = await bootstrap(session, backends.settings)
            break
        except IntegrityError:
            # Another replica bootstrapped at the same moment; its rows are as good as ours.
            if attempt:
                raise
    if generated:
        path = backends.settings.data_dir / "admin-password"
        print(
            f"\n  Wheelyard created user 'admin' with password: {generated}\n"
            f"  (stored in {path}, readable only by you; shown this once)\n",
            file=sys.stderr,
            flush=True,
        )


async def _targets(
    stack: AsyncExitStack, runtime: Runtime, services: ServiceFactory | None
) -> Targets:
    if services is not None:
        apps = services(runtime)
        for service_app in apps:
            await stack.enter_async_context(service_app.router.lifespan_context(service_app))
        index, upload, proxy_cache = apps
        return Targets(index=index, upload=upload, proxy_cache=proxy_cache)
    s = runtime.backends.settings
    urls: dict[str, Any] = {
        "WHEELYARD_INDEX_URL": s.index_url,
        "WHEELYARD_UPLOAD_URL": s.upload_url,
        "WHEELYARD_PROXY_CACHE_URL": s.proxy_cache_url,
    }
    missing = [k for k, v in urls.items() if not v]
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)}: split mode needs the URL of every service "
            "(or run `wheelyard serve` for the embedded one-process server)"
        )
    forwarders = [Forwarder(u) for u in urls.values()]
    for fwd in forwarders:
        stack.push_async_callback(fwd.aclose)
    return Targets(forwarders[0], forwarders[1], forwarders[2])
