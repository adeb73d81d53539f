"""`wheelyard keys generate`: the gateway's internal JWT key pair for a split deployment.

The gateway signs the token it forwards with an Ed25519 private key; every service verifies it
with the public key (see wheelyard.shared.auth.internal_jwt). Only the gateway may hold the
private key, so the two halves are delivered separately:

- `--format pem --out DIR [--public-out DIR2]` writes `internal-jwt-private.pem` (mode 0600,
  in a directory created 0700) and `internal-jwt-public.pem` (mode 0644, in DIR2 or DIR).
  With `--keep-existing` an existing private key is kept (its public half is rewritten), so a
  one-shot key-generation step can run at every `docker compose up`.
- `--format k8s-secret` prints a Secret with the private key (mounted by the gateway only) and
  a ConfigMap with the public key (mounted by the services): pipe it to `kubectl apply -f -`.
  Nothing is written to disk.
"""

from __future__ import annotations

import base64
import enum
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from wheelyard.shared.auth.internal_jwt import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    new_key_pems,
    public_pem_of,
)
from wheelyard.shared.errors import ConfigurationError

keys_app = typer.Typer(help="The gateway's internal JWT signing keys.", no_args_is_help=True)

#: Names the Kubernetes manifests in deploy/k8s mount (keep in step with deploy/k8s/base).
K8S_PRIVATE_SECRET = "wheelyard-internal-jwt-private"  # noqa: S105 (a name, not a secret)
K8S_PUBLIC_CONFIGMAP = "wheelyard-internal-jwt-public"
K8S_PRIVATE_KEY = "private.pem"
K8S_PUBLIC_KEY = "public.pem"


class KeyFormat(enum.StrEnum):
    """How `keys generate` delivers the pair."""

    pem = "pem"
    k8s_secret = "k8s-secret"  # noqa: S105 (a format name)


@keys_app.command("generate")
def generate(
    format_: Annotated[
        KeyFormat, typer.Option("--format", help="pem: two files; k8s-secret: print manifests.")
    ] = KeyFormat.pem,
    out: Annotated[
        Path | None, typer.Option(help="pem: directory for the private key (created 0700).")
    ] = None,
    public_out: Annotated[
        Path | None, typer.Option(help="pem: directory for the public key (default: --out).")
    ] = None,
    keep_existing: Annotated[
        bool, typer.Option(help="pem: keep a private key already in --out instead of failing.")
    ] = False,
    namespace: Annotated[
        str, typer.Option(help="k8s-secret: namespace of the Secret and ConfigMap.")
    ] = "wheelyard",
) -> None:
    """Generate the Ed25519 key pair the gateway signs internal tokens with."""
    if format_ is KeyFormat.k8s_secret:
        if out is not None or public_out is not None or keep_existing:
            _fail("--out, --public-out and --keep-existing apply to --format pem only")
        private_pem, public_pem = new_key_pems()
        typer.echo(k8s_manifests(private_pem, public_pem, namespace), nl=False)
        return
    if out is None:
        _fail("--format pem needs --out DIR")
    try:
        private_path, public_path, created = write_pem_files(
            out, public_out or out, keep_existing=keep_existing
        )
    except (ConfigurationError, OSError) as exc:
        _fail(getattr(exc, "message", None) or str(exc))
    verb = "created" if created else "kept"
    typer.echo(f"{verb} {private_path} (private, 0600); wrote {public_path} (public, 0644)")


def write_pem_files(
    private_dir: Path, public_dir: Path, *, keep_existing: bool
) -> tuple[Path, Path, bool]:
    """Write the pair as PEM files; return (private path, public path, whether it is new).

    An existing private key is an error (it would silently invalidate every running service)
    unless `keep_existing`, which keeps it and rewrites the public file from it.
    """
    private_path = private_dir / PRIVATE_KEY_FILE
    public_path = public_dir / PUBLIC_KEY_FILE
    created = not private_path.exists()
    if created:
        private_pem, public_pem = new_key_pems()
        private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: two generators racing never both believe they wrote the key in use.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
    elif keep_existing:
        public_pem = public_pem_of(private_path.read_bytes())
    else:
        raise ConfigurationError(
            f"{private_path} already exists; pass --keep-existing to keep it, or delete it "
            "first to rotate the key (then restart the gateway and every service)"
        )
    public_dir.mkdir(parents=True, exist_ok=True)
    temporary = public_path.with_name(public_path.name + ".tmp")
    temporary.write_bytes(public_pem)
    temporary.chmod(0o644)  # whatever the umask: every service must be able to read it
    temporary.replace(public_path)
    return private_path, public_path, created


def _yaml(documents: list[dict[str, Any]]) -> str:
    """The documents as YAML, multi-line strings (the PEM) as literal blocks, as a person would
    write them. PyYAML is imported here: `wheelyard serve` loads this module to build its
    command line and never writes YAML."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def literal(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, literal)
    return str(yaml.dump_all(documents, Dumper=Dumper, sort_keys=False))


def k8s_manifests(private_pem: bytes, public_pem: bytes, namespace: str) -> str:
    """A Secret holding the private key and a ConfigMap holding the public key, as YAML."""
    labels = {"app.kubernetes.io/part-of": "wheelyard"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": K8S_PRIVATE_SECRET, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "data": {K8S_PRIVATE_KEY: base64.b64encode(private_pem).decode("ascii")},
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": K8S_PUBLIC_CONFIGMAP, "namespace": namespace, "labels": labels},
        "data": {K8S_PUBLIC_KEY: public_pem.decode("ascii")},
    }
    header = (
        "# The gateway's internal JWT keys: `kubectl apply -f` this file (or pipe it).\n"
        f"# Secret {K8S_PRIVATE_SECRET}: the private key, mounted by the gateway only.\n"
        f"# ConfigMap {K8S_PUBLIC_CONFIGMAP}: the public key, mounted by every service.\n"
    )
    body = _yaml([secret, configmap])
    return header + "---\n" + body


def _fail(message: str) -> NoReturn:
    typer.echo(f"wheelyard: {message}", err=True)
    raise typer.Exit(2)
