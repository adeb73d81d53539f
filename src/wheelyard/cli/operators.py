"""Operator commands acting on the database directly (no server needed): users, repositories,
permissions, API tokens. They use the same functions as the management API and write the same
audit events (actor `cli`). With a Redis cache configured, cached credentials are dropped at
once; with the embedded memory cache a running server notices within 10 seconds.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.authenticator import forget_token, forget_user
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import RepositoryConfig, UpstreamConfig, load_settings
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts
from wheelyard.shared.domain.repositories import apply_repository, list_repositories, split_path
from wheelyard.shared.errors import WheelyardError

user_app = typer.Typer(help="Users.", no_args_is_help=True)
repo_app = typer.Typer(help="Repositories.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
T = TypeVar("T")
ACTOR = "cli"


def _run(
    work: Callable[[Backends, AsyncSession], Awaitable[T]],
    then: Callable[[Backends, T], Awaitable[None]] | None = None,
) -> T:
    """Run `work` in one write transaction and commit; then `then` with its result (dropping
    cached credentials: only after the commit, or a request in between could cache the old
    state again)."""

    async def main() -> T:
        # Imported here: `wheelyard serve` loads this module to build its command line, and a
        # server process has no use for Alembic (wheelyard.shared.db.schema).
        from wheelyard.shared.db.migrate import upgrade_database_async

        backends = await Backends.open(load_settings())
        try:
            await upgrade_database_async(backends.settings.effective_database_url)
            async with backends.sessions() as session:
                await begin_write(session)
                result = await work(backends, session)
                await session.commit()
            if then is not None:
                await then(backends, result)
            return result
        finally:
            await backends.close()

    try:
        return asyncio.run(main())
    except WheelyardError as exc:
        typer.echo(f"wheelyard: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def _password(given: str | None, from_stdin: bool) -> str:
    """The password: `--password`, one line of standard input (`--password-stdin`), or asked
    twice on the terminal. Without a terminal there is no one to ask: a clear error naming the
    option, rather than a prompt that reads nothing (exit status 2, like any usage error)."""
    if given and from_stdin:
        typer.echo("wheelyard: give either --password or --password-stdin, not both", err=True)
        raise typer.Exit(2)
    if given:
        return given
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            typer.echo("wheelyard: --password-stdin read an empty password", err=True)
            raise typer.Exit(2)
        return line
    if not sys.stdin.isatty():
        typer.echo(
            "wheelyard: no terminal to ask for the password: pipe it in with --password-stdin",
            err=True,
        )
        raise typer.Exit(2)
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        typer.echo("wheelyard: the passwords differ", err=True)
        raise typer.Exit(1)
    return first


PasswordOpt = Annotated[
    str | None,
    typer.Option(help="The password (visible to other local users: prefer --password-stdin)."),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


@user_app.command("add")
def user_add(
    username: str,
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    admin: Annotated[bool, typer.Option(help="Make the user an administrator.")] = False,
) -> None:
    """Create a user (the password is asked for on a terminal, else --password-stdin)."""
    secret = _password(password, password_stdin)

    async def work(_b: Backends, s: AsyncSession) -> None:
        await accounts.create_user(s, username, secret, is_admin=admin)
        accounts.record(s, actor=ACTOR, action="user.create", target=username)

    # A failed sign-in with this name may have cached "no such user".
    _run(work, lambda b, _: forget_user(b.cache, username))
    typer.echo(f"created user {username}")


@user_app.command("passwd")
def user_passwd(
    username: str, password: PasswordOpt = None, password_stdin: PasswordStdinOpt = False
) -> None:
    """Set a user's password (asked for on a terminal, else --password-stdin)."""
    secret = _password(password, password_stdin)

    async def work(_b: Backends, s: AsyncSession) -> None:
        await accounts.update_user(s, username, password=secret)
        accounts.record(
            s, actor=ACTOR, action="user.update", target=username, detail={"changed": ["password"]}
        )

    _run(work, lambda b, _: forget_user(b.cache, username))
    typer.echo(f"password of {username} changed")


@user_app.command("list")
def user_list() -> None:
    """List users."""

    async def work(_b: Backends, s: AsyncSession) -> list[Any]:
        return await accounts.list_users(s)

    for user in _run(work):
        flags = ["admin"] if user.is_admin else []
        if not user.is_active:
            flags.append("inactive")
        typer.echo(f"{user.username}\t{','.join(flags)}")


@repo_app.command("add")
def repo_add(
    name: Annotated[str, typer.Argument(help="`repo` or `storage/repo`.")],
    type_: Annotated[str, typer.Option("--type", help="hosted, proxy or group.")] = "hosted",
    visibility: Annotated[str, typer.Option(help="public or private.")] = "public",
    upstream: Annotated[list[str] | None, typer.Option(help="Upstream URL (proxy).")] = None,
    member: Annotated[list[str] | None, typer.Option(help="Member repository (group).")] = None,
    cache_max_bytes: Annotated[
        str | None, typer.Option(help="Proxy: cache at most this much (bytes, or e.g. 50GB).")
    ] = None,
    cache_max_idle: Annotated[
        str | None, typer.Option(help="Proxy: drop files not downloaded for this long (90d).")
    ] = None,
) -> None:
    """Create (or update) a repository."""
    storage, repo = split_path(name, "default")
    try:
        spec = RepositoryConfig(
            storage=storage,
            name=repo,
            # Plain strings from the command line: pydantic checks them against the Literal
            # fields at runtime (a ValueError below), which its constructor's types cannot say.
            type=type_,  # type: ignore[arg-type]
            visibility=visibility,  # type: ignore[arg-type]
            upstreams=[UpstreamConfig(url=u) for u in upstream or []],
            members=member or [],
            cache_max_bytes=cache_max_bytes,  # type: ignore[arg-type]
            cache_max_idle=cache_max_idle,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        typer.echo(f"wheelyard: {exc}", err=True)
        raise typer.Exit(1) from exc

    async def work(_b: Backends, s: AsyncSession) -> None:
        view = await apply_repository(s, spec)
        accounts.record(s, actor=ACTOR, action="repository.create", target=view.path)

    _run(work)
    typer.echo(f"repository {spec.storage}/{spec.name} is {spec.type}, {spec.visibility}")


@repo_app.command("list")
def repo_list() -> None:
    """List repositories."""

    async def work(_b: Backends, s: AsyncSession) -> list[Any]:
        return await list_repositories(s)

    for view in _run(work):
        extra = ",".join(view.members) or ",".join(u.url for u in view.upstreams)
        typer.echo(f"{view.path}\t{view.type}\t{view.visibility}\t{extra}")


def grant(
    username: str,
    repository: Annotated[str, typer.Argument(help="`storage/repo`.")],
    level: Annotated[str, typer.Argument(help="read, write, admin, or none to remove.")],
) -> None:
    """Give a user a level on a repository."""
    storage, repo = split_path(repository, default_storage="")

    async def work(_b: Backends, s: AsyncSession) -> None:
        await accounts.grant(s, username, storage, repo, None if level == "none" else level)
        accounts.record(
            s,
            actor=ACTOR,
            action="permission.set",
            target=repository,
            detail={"user": username, "level": level},
        )

    _run(work, lambda b, _: forget_user(b.cache, username))
    typer.echo(f"{username}: {level} on {repository}")


@token_app.command("create")
def token_create(
    username: str,
    repository: Annotated[list[str], typer.Option(help="`storage/repo` the token opens.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    scope: Annotated[str, typer.Option(help="read or write.")] = "read",
    days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
) -> None:
    """Create an API token for a user; prints it once."""
    expires = datetime.now(UTC) + timedelta(days=days) if days else None

    async def work(_b: Backends, s: AsyncSession) -> accounts.CreatedToken:
        owner = await accounts.get_user(s, username)
        created = await accounts.create_token(
            s, owner, name=name, repositories=repository, scope=scope, expires_at=expires
        )
        accounts.record(
            s,
            actor=ACTOR,
            action="token.create",
            target=f"token:{created.row.id}",
            detail={"owner": username, "scope": scope, "repositories": repository},
        )
        return created

    created = _run(work)
    typer.echo(f"token {created.row.id} ({scope}): {created.value}")


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke an API token."""

    async def work(_b: Backends, s: AsyncSession) -> str:
        token = await accounts.get_token(s, token_id)
        await accounts.revoke_token(s, token)
        accounts.record(s, actor=ACTOR, action="token.revoke", target=f"token:{token_id}")
        return token.public_id

    _run(work, lambda b, public_id: forget_token(b.cache, public_id))
    typer.echo(f"token {token_id} revoked")
