"""The `wheelyard` command: run the server (embedded or one service), manage the database.

Operator commands act on the configured database directly (no server needed).
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from wheelyard.cli.operators import grant, repo_app, token_app, user_app
from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

app = typer.Typer(help="Wheelyard: a private Python package registry.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(repo_app, name="repo")
app.add_typer(token_app, name="token")
app.command("grant")(grant)


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


def _run(asgi_app: FastAPI, host: str, port: int, settings: Settings, access_log: bool) -> None:
    """Serve `asgi_app`: the one place the HTTP server and its protocol are chosen
    (uvicorn with request-head limits, docs/adr/0003-bounded-request-heads.md)."""
    import uvicorn

    from wheelyard.cli.protocol import HeadLimits, bounded_protocol

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    _raise_open_file_limit()
    if not settings.public_url and settings.allowed_hosts is None:
        logging.getLogger("wheelyard").warning(
            "WHEELYARD_PUBLIC_URL and WHEELYARD_ALLOWED_HOSTS are unset: links in pages are "
            "built from whatever Host header a client sends, and such pages may be kept by "
            "shared caches; set one of them (docs/security.md)"
        )
    limits = HeadLimits(
        max_size=settings.max_header_size,
        max_count=settings.max_header_count,
        timeout=settings.header_timeout,
    )
    uvicorn.run(
        asgi_app,
        host=host,
        port=port,
        http=bounded_protocol(limits),
        log_level=settings.log_level,
        access_log=access_log,
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
    # The gateway's factory takes more keyword arguments than the others; only `settings` is used.
    factory: Callable[..., FastAPI]
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
