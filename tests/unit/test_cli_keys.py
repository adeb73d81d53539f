"""`wheelyard keys generate`: the pair as files with the right modes, or as Kubernetes objects."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import kubernetes_validate
import yaml
from typer.testing import CliRunner

from wheelyard.cli.keys import (
    K8S_PRIVATE_KEY,
    K8S_PRIVATE_SECRET,
    K8S_PUBLIC_CONFIGMAP,
    K8S_PUBLIC_KEY,
)
from wheelyard.cli.main import app
from wheelyard.shared.auth.internal_jwt import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    Minter,
    Verifier,
    load_key_pair,
)
from wheelyard.shared.auth.principal import Principal

runner = CliRunner()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _round_trip(private_pem: bytes, public_pem: bytes) -> None:
    """A token signed with the private key verifies with the public one: they are a pair."""
    principal = Principal(username="alice", user_id=7)
    token = Minter(load_key_pair(private_pem, None)).token_for(principal)
    assert Verifier(load_key_pair(None, public_pem)).principal(token) == principal


def test_pem_writes_the_private_key_0600_in_a_0700_directory_and_the_public_key_0644(
    tmp_path: Path,
) -> None:
    private_dir, public_dir = tmp_path / "private", tmp_path / "public"
    args = ["keys", "generate", "--format", "pem"]
    result = runner.invoke(app, [*args, "--out", str(private_dir), "--public-out", str(public_dir)])
    assert result.exit_code == 0, result.output
    private, public = private_dir / PRIVATE_KEY_FILE, public_dir / PUBLIC_KEY_FILE
    assert (_mode(private_dir), _mode(private), _mode(public)) == (0o700, 0o600, 0o644)
    assert list(private_dir.iterdir()) == [private]  # nothing public next to the secret
    _round_trip(private.read_bytes(), public.read_bytes())


def test_pem_refuses_to_replace_a_key_and_keeps_it_when_asked(tmp_path: Path) -> None:
    args = ["keys", "generate", "--format", "pem", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    private = tmp_path / PRIVATE_KEY_FILE
    first = private.read_bytes()
    (tmp_path / PUBLIC_KEY_FILE).write_text("damaged")

    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    assert "already exists" in refused.output and "--keep-existing" in refused.output
    assert private.read_bytes() == first

    kept = runner.invoke(app, [*args, "--keep-existing"])
    assert kept.exit_code == 0, kept.output
    assert private.read_bytes() == first
    # The public file is rewritten from the kept private key.
    _round_trip(first, (tmp_path / PUBLIC_KEY_FILE).read_bytes())


def test_pem_needs_an_output_directory() -> None:
    result = runner.invoke(app, ["keys", "generate", "--format", "pem"])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_k8s_secret_prints_a_valid_secret_and_configmap_holding_the_two_halves() -> None:
    result = runner.invoke(app, ["keys", "generate", "--format", "k8s-secret"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Secret", K8S_PRIVATE_SECRET),
        ("ConfigMap", K8S_PUBLIC_CONFIGMAP),
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
        assert doc["metadata"]["namespace"] == "wheelyard"
    secret, configmap = docs
    assert set(secret["data"]) == {K8S_PRIVATE_KEY}
    assert set(configmap["data"]) == {K8S_PUBLIC_KEY}
    assert "PRIVATE" not in result.stdout.split("kind: ConfigMap")[1]
    private_pem = base64.b64decode(secret["data"][K8S_PRIVATE_KEY])
    _round_trip(private_pem, configmap["data"][K8S_PUBLIC_KEY].encode())


def test_k8s_secret_takes_a_namespace_and_each_run_makes_a_new_pair() -> None:
    args = ["keys", "generate", "--format", "k8s-secret", "--namespace", "registry"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == second.exit_code == 0
    assert "namespace: registry" in first.stdout
    assert first.stdout != second.stdout


def test_k8s_secret_refuses_file_options() -> None:
    result = runner.invoke(app, ["keys", "generate", "--format", "k8s-secret", "--out", "/tmp"])
    assert result.exit_code == 2
    assert "--format pem only" in result.output
