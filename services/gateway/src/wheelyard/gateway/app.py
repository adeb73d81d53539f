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
from wheelyard.gateway.replicas import ReplicaSet, parse_endpoints
from wheelyard.gateway.targets import Forwarder
from wheelyard.gateway.ui import install_ui, start_ui
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.failure_audit import FailureAudit
from wheelyard.shared.auth.internal_jwt import KeyPair, Minter, keys_from_settings
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.db.schema import ensure_schema
from wheelyard.shared.domain.bootstrap import bootstrap
from wheelyard.shared.domain.repositories import policy_settings
from wheelyard.shared.errors import ConfigurationError, InvalidInput
from wheelyard.shared.web.app import NO_TELEMETRY, add_observer, health_router, settle_heap
from wheelyard.shared.web.observe import RecordEndpoint
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
    if settings is None:
        settings = backends.settings if backends is not None else load_settings()
    configured = settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            current = backends
            if current is None:
                current = await Backends.open(configured)
                stack.push_async_callback(current.close)
            # The key pair first: a misconfigured key stops the start before anything else,
            # and in embedded mode the services verify with its public half.
            keys = keys_from_settings(current.settings, signing=True)
            await prepare_database(current)
            if current.settings.trust_proxy_headers and not current.settings.trusted_proxies:
                log.warning(
                    "WHEELYARD_TRUST_PROXY_HEADERS does not make X-Forwarded-For trusted: "
                    "client addresses (rate limits, audit) are the proxy's until "
                    "WHEELYARD_TRUSTED_PROXIES lists its addresses"
                )
            runtime = Runtime.build(current, keys)
            app.state.runtime = runtime
            targets = await _targets(stack, runtime, services)
            app.state.authenticator = _authenticator(current, keys)
            start_ui(app, current.cache)
            app.state.gateway = GatewayState(
                authenticator=app.state.authenticator,
                minter=Minter(keys),
                dispatcher=Dispatcher(targets, kinds_from(runtime.directory)),
            )
            settle_heap()
            yield runtime.server_state()

    app = FastAPI(
        title="Wheelyard",
        telemetry=NO_TELEMETRY,
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
    # Added innermost first: the last one added is the outermost.
    app.add_middleware(RecordEndpoint)
    app.add_middleware(GatewayMiddleware)
    install_ui(app)  # after the gateway's middleware: its browser redirects come first
    # Outermost: every request observed, the interface's pages and redirects included.
    add_observer(app, "embedded" if services else "gateway", settings, assign_ids=True)
    return app


def _authenticator(backends: Backends, keys: KeyPair) -> Authenticator:
    audit = FailureAudit(
        backends.sessions,
        backends.cache,
        per_source=backends.settings.audit_failures_per_minute,
        overall=backends.settings.audit_failures_per_minute_total,
    )
    return Authenticator(backends.sessions, backends.cache, keys, audit=audit)


def check_settings(settings: Settings) -> None:
    """Refuse a configuration the gateway cannot work with, naming the setting: unreadable or
    mismatched keys, a public key without its private key, malformed service URLs."""
    keys_from_settings(settings, signing=True)
    for setting, value in _service_urls(settings).items():
        if value:
            parse_endpoints(value, setting)
    for spec in settings.repositories:
        # The gateway applies declared repositories at start: a rule that does not parse
        # stops it before it listens, naming the repository and the setting.
        try:
            policy_settings(spec)
        except InvalidInput as exc:
            raise ConfigurationError(f"WHEELYARD_CONFIG: {exc.message}") from None


async def prepare_database(backends: Backends) -> None:
    """Upgrade the schema and bootstrap defaults; prints a generated admin password once."""
    settings = backends.settings
    await ensure_schema(
        backends.engine,
        settings.effective_database_url,
        log_level=settings.log_level,
        log_format=settings.log_format,
    )
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
        path = settings.data_dir / "admin-password"
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
    urls = _service_urls(runtime.backends.settings)
    missing = [k for k, v in urls.items() if not v]
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)}: split mode needs the URL of every service "
            "(or run `wheelyard serve` for the embedded one-process server)"
        )
    forwarders = []
    for (setting, value), service in zip(urls.items(), SERVICES, strict=True):
        forwarder = Forwarder(service, ReplicaSet(service, parse_endpoints(value or "", setting)))
        stack.push_async_callback(forwarder.aclose)
        # Best effort: a name that does not resolve yet is retried; the gateway starts anyway.
        await forwarder.start()
        forwarders.append(forwarder)
    return Targets(forwarders[0], forwarders[1], forwarders[2])


#: The services behind the gateway, in the order of `_service_urls`.
SERVICES = ("index", "upload", "proxy-cache")


def _service_urls(settings: Settings) -> dict[str, str | None]:
    return {
        "WHEELYARD_INDEX_URL": settings.index_url,
        "WHEELYARD_UPLOAD_URL": settings.upload_url,
        "WHEELYARD_PROXY_CACHE_URL": settings.proxy_cache_url,
    }
