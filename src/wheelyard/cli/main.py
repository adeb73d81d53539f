"""The `wheelyard` command: run the server (embedded or one service), manage the database.

Operator commands act on the configured database directly (no server needed).
"""

from __future__ import annotations

import enum
import logging
import sys
from typing import Annotated

import typer

from wheelyard.cli.keys import keys_app
from wheelyard.cli.operators import grant, repo_app, token_app, user_app
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.errors import ConfigurationError

app = typer.Typer(help="Wheelyard: a private Python package registry.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(repo_app, name="repo")
app.add_typer(token_app, name="token")
app.add_typer(keys_app, name="keys")
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


def _run(asgi_app: object, host: str, port: int, settings: Settings, access_log: bool) -> None:
    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        asgi_app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level=settings.log_level,
        access_log=access_log,
        proxy_headers=settings.trust_proxy_headers,
        forwarded_allow_ips="*" if settings.trust_proxy_headers else None,
        timeout_keep_alive=15,
        lifespan="on",
    )


HostOpt = Annotated[str, typer.Option(help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option(help="Port to listen on.")]
AccessLogOpt = Annotated[bool, typer.Option(help="Log every request (costs throughput).")]


@app.command()
def serve(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8000, access_log: AccessLogOpt = False
) -> None:
    """Run the whole registry in one process (embedded mode)."""
    from wheelyard.gateway.embedded import create_embedded_app

    settings = _settings()
    _run(create_embedded_app(settings), host, port, settings, access_log)


@app.command()
def service(
    name: Annotated[Service, typer.Argument(help="Which service to run.")],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    access_log: AccessLogOpt = False,
) -> None:
    """Run one service on its own (split mode); the gateway forwards to the others by URL."""
    settings = _settings()
    if name is Service.gateway:
        from wheelyard.gateway.app import create_app as factory
    elif name is Service.index:
        from wheelyard.index.app import create_app as factory
    elif name is Service.upload:
        from wheelyard.upload.app import create_app as factory
    else:
        from wheelyard.proxy_cache.app import create_app as factory
    _run(factory(settings=settings), host, port, settings, access_log)


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
