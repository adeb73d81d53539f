"""`wheelyard mirror prefetch` from lockfiles that real `uv lock` / `uv export --format
pylock.toml` wrote against a local upstream: every locked file (and its `.metadata`) lands in
the proxy's cache, so after the upstream is stopped `uv pip install` of every locked package
through the proxy still works; a second run fetches nothing; the summary says what happened.
"""

from __future__ import annotations

import sqlite3
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from wheelyard.testing.clients import (
    PLAIN_OUTPUT,
    Outcome,
    installed_version,
    make_venv,
    run,
    uv_binary,
    uv_pip_install,
)
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.upstream import LocalUpstream

PACKAGES = {"app": "1.2", "libone": "2.0", "libtwo": "1.1", "libthree": "0.9"}

REPOSITORIES = """
[[repositories]]
name = "{name}"
type = "proxy"
upstreams = [{{url = "{url}", timeout = 5}}]
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    up = LocalUpstream(tmp_path_factory.mktemp("upstream"))
    up.add_project("libthree", ("0.8", "0.9"), sdist=True)
    up.add_project("libtwo", ("1.0", "1.1"), requires_dist=("libthree>=0.9",))
    up.add_project("libone", ("2.0",))
    up.add_project("app", ("1.1", "1.2"), requires_dist=("libone>=2", "libtwo>=1.0"))
    with up:
        yield up


@pytest.fixture(scope="module")
def locks(upstream: LocalUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project depending on `app`, locked by uv against the upstream: `uv.lock` and the
    `pylock.toml` uv exports from it."""
    project = tmp_path_factory.mktemp("consumer")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["app"]\n'
    )
    env = _uv_env(project)
    common = ["--python", sys.executable, "--default-index", upstream.simple_url]
    run([uv_binary(), "lock", *common], cwd=project, env=env).succeeded()
    run(
        [
            uv_binary(),
            "export",
            "--format",
            "pylock.toml",
            "--no-emit-project",
            "-o",
            "pylock.toml",
            *common,
        ],
        cwd=project,
        env=env,
    ).succeeded()
    return project


def _uv_env(where: Path) -> dict[str, str]:
    return clean_env(
        UV_CACHE_DIR=str(where / "uv-cache"), UV_PYTHON_DOWNLOADS="never", **PLAIN_OUTPUT
    )


@pytest.fixture(scope="module")
def server(
    upstream: LocalUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with two empty proxy repositories of the upstream (one per lockfile format),
    and the environment that points the CLI at its stores."""
    root = tmp_path_factory.mktemp("prefetch-server")
    config = root / "wheelyard.toml"
    config.write_text(
        REPOSITORIES.format(name="fromuvlock", url=upstream.simple_url)
        + REPOSITORIES.format(name="frompylock", url=upstream.simple_url)
        + REPOSITORIES.format(name="fromreqs", url=upstream.simple_url)
    )
    env = {"WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "WHEELYARD_CONFIG": str(config)}
    data = root / "data"
    with ServerProcess(data, env) as process:
        yield process, clean_env(WHEELYARD_DATA_DIR=str(data), **env, **PLAIN_OUTPUT)


def _prefetch(env: dict[str, str], repository: str, *args: str | Path) -> Outcome:
    return run(
        [
            sys.executable,
            "-m",
            "wheelyard.cli",
            "mirror",
            "prefetch",
            "--repository",
            repository,
            *args,
        ],
        env=env,
    )


def _pinned(env: dict[str, str], repository: str) -> list[str]:
    database = Path(env["WHEELYARD_DATA_DIR"]) / "wheelyard.db"
    with sqlite3.connect(database, timeout=30) as conn:
        rows = conn.execute(
            "SELECT p.filename FROM proxy_pins p JOIN repositories r ON r.id = p.repository_id"
            " WHERE r.name = ? ORDER BY p.filename",
            (repository,),
        ).fetchall()
    return [row[0] for row in rows]


def _locked_files(lock: Path) -> list[str]:
    packages = tomllib.loads(lock.read_text())["packages"]
    names = []
    for package in packages:
        for entry in [package.get("sdist"), *package.get("wheels", [])]:
            if entry:
                names.append(entry["url"].rsplit("/", 1)[-1])
    return names


def _install_all(server: ServerProcess, repository: str, target: Path) -> None:
    python = make_venv(target, with_pip=False)
    pins = [f"{name}=={version}" for name, version in PACKAGES.items()]
    index = f"{server.url}/repositories/default/{repository}/simple/"
    uv_pip_install(python, index, *pins).succeeded()
    for name, version in PACKAGES.items():
        assert installed_version(python, name) == version, name


def test_prefetch_from_uv_lock_and_pylock_then_install_with_the_upstream_down(
    upstream: LocalUpstream,
    locks: Path,
    server: tuple[ServerProcess, dict[str, str]],
    tmp_path: Path,
) -> None:
    process, env = server
    expected = _locked_files(locks / "pylock.toml")
    # Every package of the lock, wheels and the one sdist.
    assert len(expected) == 5, expected

    first = _prefetch(env, "default/fromuvlock", locks / "uv.lock").succeeded()
    assert f"prefetch into default/fromuvlock: {len(expected)} files" in first.output
    assert f"fetched: {len(expected)} (" in first.output
    assert "already cached: 0" in first.output and "failed: 0" in first.output
    for filename in expected:
        assert f"fetched {filename}" in first.output, first.output  # one plain line per file
    # Pre-fetched files are pinned: retention keeps them until they are unpinned.
    assert _pinned(env, "fromuvlock") == sorted(expected)
    second = _prefetch(env, "default/frompylock", locks / "pylock.toml").succeeded()
    assert f"fetched: {len(expected)} (" in second.output, second.output
    # A second run resumes: everything is cached already, nothing is asked of the upstream.
    upstream.reset_counters()
    again = _prefetch(env, "default/fromuvlock", locks / "uv.lock").succeeded()
    assert "fetched: 0 (0 B)" in again.output and f"already cached: {len(expected)}" in again.output
    assert not any(path.startswith("/files/") for path in upstream.hits), upstream.hits

    upstream.stop()
    try:
        _install_all(process, "fromuvlock", tmp_path / "one")
        _install_all(process, "frompylock", tmp_path / "two")
    finally:
        upstream.start()


def test_requirements_pins_hashes_and_failures_are_summarised(
    upstream: LocalUpstream, server: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    _process, env = server
    good = upstream.project("libone").files[0]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"libone==2.0 --hash=sha256:{good.sha256}\n"
        f"libtwo==1.1 \\\n    --hash=sha256:{'0' * 64}\n"
        "libthree==7.7\n"
        "app==1.2\n"
    )
    outcome = _prefetch(
        env,
        "default/fromreqs",
        requirements,
        "--python-version",
        "3.12",
        "--platform",
        "manylinux_2_17_x86_64",
    ).failed()
    text = outcome.text
    assert "fetched: 2 (" in text and "failed: 2" in text, outcome.output
    assert (
        "libtwo==1.1: no file of this version has a sha256 among the requirement's --hash" in text
    )
    assert "libthree==7.7: 'default/fromreqs' lists no file of version 7.7" in text
