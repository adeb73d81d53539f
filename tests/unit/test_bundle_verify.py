"""`verify_bundle`: every listed file is checked, paths stay inside the bundle, signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wheelyard.shared.domain.bundles import FORMAT, verify_bundle
from wheelyard.shared.errors import IntegrityFailure, InvalidInput


def _bundle(root: Path, files: dict[str, bytes], *, listed: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    entries = [
        {
            "path": p,
            "sha256": hashlib.sha256(files.get(p, b"")).hexdigest(),
            "size": len(files.get(p, b"")),
        }
        for p in (listed if listed is not None else list(files))
    ]
    manifest = {"format": FORMAT, "repository": "default/x", "files": entries, "dists": []}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_good_bundle_verifies(tmp_path: Path) -> None:
    manifest = verify_bundle(_bundle(tmp_path, {"simple/index.html": b"<html>"}))
    assert manifest.repository == "default/x" and manifest.dists == []


def test_a_changed_file_is_named(tmp_path: Path) -> None:
    root = _bundle(tmp_path, {"files/a/a-1.tar.gz": b"abc"})
    (root / "files/a/a-1.tar.gz").write_bytes(b"abd")
    with pytest.raises(IntegrityFailure, match=re.escape("'files/a/a-1.tar.gz' does not match")):
        verify_bundle(root)


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "a/../../x"])
def test_paths_outside_the_bundle_are_refused(tmp_path: Path, path: str) -> None:
    root = _bundle(tmp_path / "b", {}, listed=[path])
    with pytest.raises(IntegrityFailure, match="outside the bundle"):
        verify_bundle(root)


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_bytes(b"s")
    root = tmp_path / "b"
    root.mkdir()
    (root / "files").symlink_to(elsewhere)
    files = {"files/secret": b"s"}
    entries = [{"path": "files/secret", "sha256": hashlib.sha256(b"s").hexdigest(), "size": 1}]
    (root / "manifest.json").write_text(
        json.dumps({"format": FORMAT, "files": entries, "dists": []})
    )
    assert files
    with pytest.raises(IntegrityFailure, match="outside the bundle"):
        verify_bundle(root)


def test_missing_files_and_missing_manifests(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=re.escape("no manifest.json")):
        verify_bundle(tmp_path)
    root = _bundle(tmp_path / "b", {}, listed=["files/gone.whl"])
    with pytest.raises(
        IntegrityFailure, match=re.escape("'files/gone.whl' is listed in the manifest but missing")
    ):
        verify_bundle(root)


def test_signatures(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    root = _bundle(tmp_path, {"simple/index.html": b"x"})
    with pytest.raises(IntegrityFailure, match="not signed"):
        verify_bundle(root, public_key=key.public_key())
    body = (root / "manifest.json").read_bytes()
    (root / "manifest.json.sig").write_bytes(base64.b64encode(key.sign(body)))
    verify_bundle(root, public_key=key.public_key())
    other = Ed25519PrivateKey.generate()
    with pytest.raises(IntegrityFailure, match="does not match its signature"):
        verify_bundle(root, public_key=other.public_key())
