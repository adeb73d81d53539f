"""The `wheelyard` command: run the server (embedded or one service), manage the database.

Operator commands act on the configured database directly (no server needed).
"""

from __future__ import annotations

import enum
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wheelyard.cli.bundles import export, import_
from wheelyard.cli.keys import keys_app
from wheelyard.cli.mirror import mirror_app
from wheelyard.cli.operators import grant, repo_app, token_app, user_app
from wheelyard.cli.storage import cache_app, storage
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.errors import ConfigurationError
from wheelyard.shared.logs import configure_logging
from wheelyard.shared.malloc import keep_returning_free_pages, tune_malloc

if TYPE_CHECKING:
    from fastapi import FastAPI

app = typer.Typer(help="Wheelyard: a private Python package registry.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(repo_app, name="repo")
app.add_typer(token_app, name="token")
app.add_typer(keys_app, name="keys")
app.add_typer(mirror_app, name="mirror")
app.command("grant")(grant)
app.command("export")(export)
app.command("import")(import_)
app.add_typer(cache_app, name="cache")
app.command("storage")(storage)


class Service(enum.Enum):
    """A service that can run on its own in split mode (typer matches the values).

    A plain Enum, not a StrEnum: a `str` member called `index` would shadow `str.index`.
    """

    gateway = "gateway"
    index = "index"
    upload = "upload"
    proxy_cache = "proxy-cache"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        typer.echo(f"wheelyard: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def _run(
    asgi_app: Callable[..., Any] | str,
    host: str,
    port: int,
    settings: Settings,
    *,
    workers: int = 1,
) -> None:
    """Serve `asgi_app` (an app, or with `workers` an import string of an app factory): the
    one place the HTTP server and its protocol are chosen (uvicorn with request-head limits,
    docs/adr/0003-bounded-request-heads.md)."""
    import uvicorn

    from wheelyard.cli.protocol import BoundedHttpToolsProtocol, HeadLimits, configure

    configure_logging(settings.log_level, settings.log_format)
    _raise_open_file_limit()
    tune_malloc()  # before uvicorn starts any thread (wheelyard.shared.malloc)
    keep_returning_free_pages()  # freed heap pages go back to the kernel (the same module)
    if not settings.public_url and settings.allowed_hosts is None:
        logging.getLogger("wheelyard").warning(
            "WHEELYARD_PUBLIC_URL and WHEELYARD_ALLOWED_HOSTS are unset: links in pages are "
            "built from whatever Host header a client sends, and such pages may be kept by "
            "shared caches; set one of them (docs/security.md)"
        )
    configure(
        HeadLimits(
            max_size=settings.max_header_size,
            max_count=settings.max_header_count,
            timeout=settings.header_timeout,
        )
    )
    uvicorn.run(
        asgi_app,
        host=host,
        port=port,
        http=BoundedHttpToolsProtocol,
        workers=workers if workers > 1 else None,
        factory=workers > 1,
        log_config=None,  # configure_logging above (and in each worker) owns the handlers
        log_level=settings.log_level,
        access_log=False,  # our own access line (wheelyard.shared.web.observe) replaces it
        # The client address (rate limits, audit) comes from X-Forwarded-For only when the
        # peer is a trusted proxy, and then it is the right-most untrusted entry: the left-most
        # is whatever the client wrote (uvicorn's ProxyHeadersMiddleware does exactly this).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        timeout_keep_alive=15,
        lifespan="on",
    )


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: every connection is a descriptor,
    and the common soft limit of 1024 lets a thousand idle clients lock everyone else out
    (the Go runtime raises it at start for the same reason, since Go 1.19)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logging.getLogger(__name__).warning("cannot raise the open-file limit: %s", exc)


HostOpt = Annotated[
    str, typer.Option(envvar="WHEELYARD_HOST", help="Address to listen on.", show_envvar=True)
]
PortOpt = Annotated[
    int, typer.Option(envvar="WHEELYARD_PORT", help="Port to listen on.", show_envvar=True)
]
AccessLogOpt = Annotated[
    bool | None,
    typer.Option(help="Log every request (default: WHEELYARD_ACCESS_LOG, which is on)."),
]
WorkersOpt = Annotated[
    int, typer.Option(min=1, help="Worker processes (needs a shared cache: redis://).")
]


def _apply_access_log(access_log: bool | None) -> None:
    # An environment variable, so that worker processes (which load settings anew) see it too.
    if access_log is not None:
        os.environ["WHEELYARD_ACCESS_LOG"] = "true" if access_log else "false"


@app.command()
def serve(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8000, access_log: AccessLogOpt = None
) -> None:
    """Run the whole registry in one process (embedded mode)."""
    from wheelyard.cli.banner import StartupBanner, banner, base_url
    from wheelyard.cli.preflight import check_data_dir, check_port
    from wheelyard.gateway.app import check_settings
    from wheelyard.gateway.embedded import create_embedded_app

    _apply_access_log(access_log)
    settings = _settings()
    # The data directory and the port first: checking the settings already writes key files.
    _checked(lambda: check_data_dir(settings))
    _checked(lambda: check_port(host, port))
    _checked(lambda: check_settings(settings))
    text = banner(settings, base_url(settings, host, port))
    _run(StartupBanner(create_embedded_app(settings), text), host, port, settings)


def app_factory(name: Service) -> Callable[..., Any]:
    """The `create_app` of a service (only its `settings` argument is used here)."""
    factory: Callable[..., FastAPI]
    if name is Service.gateway:
        from wheelyard.gateway.app import create_app as factory
    elif name is Service.index:
        from wheelyard.index.app import create_app as factory
    elif name is Service.upload:
        from wheelyard.upload.app import create_app as factory
    else:
        from wheelyard.proxy_cache.app import create_app as factory
    return factory


@app.command()
def service(
    name: Annotated[Service, typer.Argument(help="Which service to run.")],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    access_log: AccessLogOpt = None,
    workers: WorkersOpt = 1,
) -> None:
    """Run one service on its own (split mode); the gateway forwards to the others by URL."""
    from wheelyard.cli.preflight import check_port
    from wheelyard.cli.workers import ROLE_ENV, prepare_metrics_dir

    _apply_access_log(access_log)
    settings = _settings()
    _checked(lambda: check_port(host, port))
    _checked(lambda: _check_service(name, settings, workers))
    if workers > 1:
        prepare_metrics_dir(settings)
        os.environ[ROLE_ENV] = name.value
        _run("wheelyard.cli.workers:worker_app", host, port, settings, workers=workers)
        return
    _run(app_factory(name)(settings=settings), host, port, settings)


def _check_service(name: Service, settings: Settings, workers: int) -> None:
    """What can be checked before listening: keys, URLs, workers."""
    from wheelyard.cli.workers import check_workers
    from wheelyard.shared.auth.internal_jwt import keys_from_settings

    check_workers(settings, workers)
    if name is Service.gateway:
        from wheelyard.gateway.app import check_settings

        check_settings(settings)
    else:
        keys_from_settings(settings, signing=False)


def _checked(check: Callable[[], None]) -> None:
    try:
        check()
    except ConfigurationError as exc:
        typer.echo(f"wheelyard: {exc.message}", err=True)
        raise typer.Exit(2) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    from wheelyard.shared.db.migrate import upgrade_database

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.effective_database_url)
    typer.echo("database is up to date")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"wheelyard: {exc.message}", err=True)
        sys.exit(2)


__all__ = ["app", "main"]
