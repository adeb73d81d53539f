"""The `wheelyard` command: run the server (embedded or one service), manage the database.

Operator commands act on the configured database directly (no server needed).
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from wheelyard.cli.operators import grant, repo_app, token_app, user_app
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.errors import ConfigurationError
from wheelyard.shared.logs import configure_logging

app = typer.Typer(help="Wheelyard: a private Python package registry.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(repo_app, name="repo")
app.add_typer(token_app, name="token")
app.command("grant")(grant)


class Service(enum.StrEnum):
    """A service that can run on its own in split mode."""

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
    asgi_app: object,
    host: str,
    port: int,
    settings: Settings,
    *,
    workers: int = 1,
) -> None:
    import uvicorn

    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        asgi_app,  # type: ignore[arg-type]
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        factory=workers > 1,
        log_config=None,  # configure_logging above (and in each worker) owns the handlers
        log_level=settings.log_level,
        access_log=False,  # our own access line (wheelyard.shared.web.observe) replaces it
        proxy_headers=settings.trust_proxy_headers,
        forwarded_allow_ips="*" if settings.trust_proxy_headers else None,
        timeout_keep_alive=15,
        lifespan="on",
    )


HostOpt = Annotated[str, typer.Option(help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option(help="Port to listen on.")]
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
    from wheelyard.gateway.app import check_settings
    from wheelyard.gateway.embedded import create_embedded_app

    _apply_access_log(access_log)
    settings = _settings()
    _checked(lambda: check_settings(settings))
    _run(create_embedded_app(settings), host, port, settings)


def app_factory(name: Service) -> Callable[..., Any]:
    """The `create_app` of a service."""
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
    from wheelyard.cli.workers import ROLE_ENV, prepare_metrics_dir

    _apply_access_log(access_log)
    settings = _settings()
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
