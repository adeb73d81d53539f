"""Air-gapped transfer, as docs/air-gap.md tells it: pre-fetch into a proxy, `wheelyard
export` a signed bundle, `pip install --index-url file://...` from it with no server at all,
`wheelyard import` it into a fresh registry and install from that; a flipped byte makes the
import fail naming the file, with nothing imported.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wheelyard.testing.clients import (
    PLAIN_OUTPUT,
    Outcome,
    installed_version,
    make_venv,
    pip_install,
    run,
    uv_pip_install,
)
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.upstream import LocalUpstream

PACKAGES = {"app": "1.2", "libone": "2.0", "libtwo": "1.1", "libthree": "0.9"}
JSON_V1 = "application/vnd.pypi.simple.v1+json"


def _env(data: Path, upstream: LocalUpstream) -> dict[str, str]:
    return {
        "WHEELYARD_DATA_DIR": str(data),
        "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WHEELYARD_PYPI_PROXY": upstream.simple_url,
    }


def _wheelyard(env: dict[str, str], *args: str | Path) -> Outcome:
    return run([sys.executable, "-m", "wheelyard.cli", *args], env=clean_env(**env, **PLAIN_OUTPUT))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    up = LocalUpstream(tmp_path_factory.mktemp("upstream"))
    up.add_project("libthree", ("0.9",), sdist=True)
    up.add_project("libtwo", ("1.1",), requires_dist=("libthree>=0.9",))
    up.add_project("libone", ("2.0",))
    up.add_project(
        "app",
        ("1.2", "2.0"),
        requires_dist=("libone>=2", "libtwo>=1.0"),
        yanked={"2.0": "broken"},
    )
    with up:
        yield up


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keys")
    private = Ed25519PrivateKey.generate()
    (root / "bundle.key").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (root / "bundle.pub").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return root / "bundle.key", root / "bundle.pub"


@pytest.fixture(scope="module")
def bundle(
    upstream: LocalUpstream, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """On the connected side: pre-fetch what the requirements pin (the yanked app 2.0 too),
    then export the proxy repository, signed."""
    root = tmp_path_factory.mktemp("connected")
    env = _env(root / "data", upstream)
    requirements = root / "requirements.txt"
    requirements.write_text(
        "".join(f"{name}=={version}\n" for name, version in PACKAGES.items()) + "app==2.0\n"
        # libthree 0.9 has a wheel and an sdist: the wheel is chosen (5 distributions).
    )
    with ServerProcess(root / "data", {k: v for k, v in env.items() if k != "WHEELYARD_DATA_DIR"}):
        _wheelyard(
            env, "mirror", "prefetch", "--repository", "default/pypi", requirements
        ).succeeded()
        out = root / "bundle"
        done = _wheelyard(
            env, "export", "--repository", "default/pypi", "--out", out, "--sign-key", keys[0]
        ).succeeded()
    assert "exported 5 distributions of default/pypi" in done.output, done.output
    return out


def test_pip_installs_from_the_bundle_with_no_server(
    upstream: LocalUpstream, bundle: Path, tmp_path: Path
) -> None:
    upstream.stop()
    try:
        python = make_venv(tmp_path / "venv", with_pip=True)
        index = bundle.resolve().as_uri() + "/simple/"
        pip_install(python, index, "app").succeeded()
        for name, version in PACKAGES.items():  # app 2.0 is yanked: 1.2 is chosen
            assert installed_version(python, name) == version, name
    finally:
        upstream.start()
    page = json.loads((bundle / "simple" / "app" / "index.json").read_text())
    by_name = {f["filename"]: f for f in page["files"]}
    assert by_name["app-2.0-py3-none-any.whl"]["yanked"] == "broken"
    assert all(f["upload-time"] for f in page["files"])
    assert all(f["core-metadata"] for f in page["files"])


@pytest.fixture
def fresh(
    upstream: LocalUpstream, tmp_path: Path
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A new registry (the disconnected side), running."""
    env = _env(tmp_path / "offline", upstream)
    server_env = {k: v for k, v in env.items() if k != "WHEELYARD_DATA_DIR"}
    with ServerProcess(tmp_path / "offline", server_env) as process:
        yield process, env


def _project_page(server: ServerProcess, repo: str, project: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/repositories/default/{repo}/simple/{project}/",
        headers={"Accept": JSON_V1},
        timeout=30,
    )


def test_import_into_a_fresh_registry_then_install(
    bundle: Path,
    keys: tuple[Path, Path],
    fresh: tuple[ServerProcess, dict[str, str]],
    tmp_path: Path,
) -> None:
    server, env = fresh
    done = _wheelyard(
        env, "import", bundle, "--repository", "default/local", "--verify-key", keys[1]
    ).succeeded()
    assert "imported 5 files into default/local (0 already there)" in done.output
    # Importing again changes nothing.
    again = _wheelyard(env, "import", bundle, "--repository", "default/local").succeeded()
    assert "imported 0 files into default/local (5 already there)" in again.output

    python = make_venv(tmp_path / "venv", with_pip=False)
    uv_pip_install(python, f"{server.url}/repositories/default/local/simple/", "app").succeeded()
    for name, version in PACKAGES.items():
        assert installed_version(python, name) == version, name
    # Upload times and yanks came along.
    exported = json.loads((bundle / "simple" / "app" / "index.json").read_text())
    page = _project_page(server, "local", "app").json()
    times = {f["filename"]: f["upload-time"] for f in page["files"]}
    assert times == {f["filename"]: f["upload-time"] for f in exported["files"]}
    yanks = {f["filename"]: f.get("yanked") for f in page["files"]}
    assert yanks["app-2.0-py3-none-any.whl"] == "broken"

    # A hosted repository exports too, here only what a requirements file pins.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("app==1.2\nlibone==2.0\n")
    again_out = tmp_path / "again"
    _wheelyard(
        env, "export", "--repository", "default/local", "--lock", requirements, "--out", again_out
    ).succeeded()
    manifest = json.loads((again_out / "manifest.json").read_text())
    original = {
        d["filename"]: d for d in json.loads((bundle / "manifest.json").read_text())["dists"]
    }
    assert {d["filename"] for d in manifest["dists"]} == {
        "app-1.2-py3-none-any.whl",
        "libone-2.0-py3-none-any.whl",
    }
    for dist in manifest["dists"]:
        assert dist["sha256"] == original[dist["filename"]]["sha256"]
        assert dist["upload_time"] == original[dist["filename"]]["upload_time"]
    # What the repository does not hold is named, and nothing is written.
    (tmp_path / "more.txt").write_text("app==1.2\nnothere==1.0\n")
    missing = _wheelyard(
        env,
        "export",
        "--repository",
        "default/local",
        "--lock",
        tmp_path / "more.txt",
        "--out",
        tmp_path / "never",
    ).failed()
    assert "does not hold 1 file(s) the lockfiles name" in missing.text, missing.output
    assert "nothere==1.0" in missing.text
    assert not (tmp_path / "never").exists()


def test_a_flipped_byte_is_refused_naming_the_file_and_nothing_is_imported(
    bundle: Path,
    keys: tuple[Path, Path],
    fresh: tuple[ServerProcess, dict[str, str]],
    tmp_path: Path,
) -> None:
    server, env = fresh
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    target = tampered / "files" / "libtwo" / "libtwo-1.1-py3-none-any.whl"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    refused = _wheelyard(env, "import", tampered, "--repository", "default/local").failed()
    assert "files/libtwo/libtwo-1.1-py3-none-any.whl" in refused.text, refused.output
    assert "nothing was imported" in refused.text
    for project in PACKAGES:
        assert _project_page(server, "local", project).status_code == 404, project

    # A manifest edited to match the flipped byte fails its signature instead.
    manifest = json.loads((tampered / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"].endswith("libtwo-1.1-py3-none-any.whl"):
            import hashlib

            entry["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    forged = _wheelyard(
        env, "import", tampered, "--repository", "default/local", "--verify-key", keys[1]
    ).failed()
    assert "manifest.json does not match its signature" in forged.text, forged.output
    assert _project_page(server, "local", "libtwo").status_code == 404
