"""`wheelyard export` and `wheelyard import`: carry a repository's files across an air gap as
a plain static index (`wheelyard.shared.domain.bundles`), on the configured stores directly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from wheelyard.shared.config import load_settings
from wheelyard.shared.errors import WheelyardError

ACTOR = "cli"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"wheelyard: {message}", err=True)
    return typer.Exit(code)


def _read_key(path: Path, *, private: bool) -> object:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    try:
        data = path.read_bytes()
        key: object = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the key {path}: {exc}", 2) from exc
    wanted = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, wanted):
        raise _fail(f"{path} is not an Ed25519 {'private' if private else 'public'} key", 2)
    return key


def export(
    out: Annotated[Path, typer.Option(help="The directory to write (new or empty).")],
    repository: Annotated[str, typer.Option(help="The repository to export, `storage/repo`.")],
    lock: Annotated[
        list[Path] | None,
        typer.Option(help="Export only what these lockfiles or requirements name (repeatable)."),
    ] = None,
    sign_key: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PEM) to sign the manifest with.")
    ] = None,
) -> None:
    """Write a repository's files as a static PEP 503/691 index with a manifest, for
    `pip install --index-url file:///DIR/simple/` and `wheelyard import`."""
    from wheelyard.shared.packaging.lockfiles import read_lock

    filenames: set[str] = set()
    versions: set[tuple[str, str]] = set()
    for path in lock or []:
        try:
            parsed = read_lock(path.read_text(encoding="utf-8"), source=str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {path}: {exc}", 2) from exc
        except WheelyardError as exc:
            raise _fail(exc.message, 2) from exc
        filenames.update(f.filename for f in parsed.files)
        versions.update((p.project, p.version) for p in parsed.pins)
    key = _read_key(sign_key, private=True) if sign_key else None
    try:
        count, dists = asyncio.run(_export(repository, out, key, filenames, versions, bool(lock)))
    except WheelyardError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"exported {dists} distributions of {repository} to {out} ({count} files)")
    typer.echo(f"install with: pip install --index-url {out.resolve().as_uri()}/simple/ PACKAGE")


async def _export(
    repository: str,
    out: Path,
    key: object,
    filenames: set[str],
    versions: set[tuple[str, str]],
    filtered: bool,
) -> tuple[int, int]:
    from wheelyard.shared.backends import Backends
    from wheelyard.shared.domain.bundles import repository_dists, select_dists, write_bundle
    from wheelyard.shared.domain.directory import RepositoryDirectory
    from wheelyard.shared.domain.repositories import split_path
    from wheelyard.shared.errors import InvalidInput

    storage, name = split_path(repository)
    backends = await Backends.open(load_settings())
    try:
        view = await RepositoryDirectory(backends.sessions).require(storage, name)
        async with backends.sessions() as session:
            dists = await repository_dists(session, view)
        if filtered:
            dists, missing = select_dists(dists, filenames, versions)
            if missing:
                raise InvalidInput(
                    f"'{view.path}' does not hold {len(missing)} file(s) the lockfiles name "
                    f"(pre-fetch them first): {', '.join(sorted(missing))}"
                )
        count = await write_bundle(backends.blobs, view, dists, out, sign_key=key)  # type: ignore[arg-type]
        return count, len(dists)
    finally:
        await backends.close()


def import_(
    directory: Annotated[Path, typer.Argument(help="The bundle directory.")],
    repository: Annotated[str, typer.Option(help="The hosted repository to import into.")],
    verify_key: Annotated[
        Path | None,
        typer.Option(help="Ed25519 public key (PEM): the manifest must carry its signature."),
    ] = None,
) -> None:
    """Verify a bundle completely, then import its files (with metadata, upload times and
    yanks) into a hosted repository in one transaction: all or nothing."""
    key = _read_key(verify_key, private=False) if verify_key else None
    try:
        added, unchanged = asyncio.run(_import(directory, repository, key))
    except WheelyardError as exc:
        raise _fail(f"import refused, nothing was imported: {exc.message}") from exc
    typer.echo(f"imported {added} files into {repository} ({unchanged} already there)")


async def _import(directory: Path, repository: str, key: object) -> tuple[int, int]:
    from anyio import to_thread

    from wheelyard.shared.backends import Backends
    from wheelyard.shared.db.migrate import upgrade_database_async
    from wheelyard.shared.domain.directory import RepositoryDirectory
    from wheelyard.shared.domain.repositories import split_path
    from wheelyard.shared.storage.tempdir import claim_temp_dir
    from wheelyard.shared.web.pagecache import PageCache
    from wheelyard.upload.bundles import import_bundle
    from wheelyard.upload.service import spool_dir

    storage, name = split_path(repository)
    backends = await Backends.open(load_settings())
    # Like the upload service: a server starting meanwhile must not sweep our spool files.
    claim = await to_thread.run_sync(claim_temp_dir, spool_dir(backends.settings))
    try:
        await upgrade_database_async(backends.settings.effective_database_url)
        view = await RepositoryDirectory(backends.sessions).require(storage, name)
        pages = PageCache.over(backends.cache)
        async with backends.sessions() as session:
            done = await import_bundle(
                session,
                pages,
                backends=backends,
                repo=view,
                directory=directory,
                actor=ACTOR,
                public_key=key,  # type: ignore[arg-type]
            )
        return done.added, done.unchanged
    finally:
        claim.release()
        await backends.close()
