"""`--skip-existing` of the publishers that interpret upload errors (docs/standards.md §7;
pypa/twine#332).

twine 6.1, poetry and pdm decide "already exists" from the server's answer to a conflicting
upload (409, or 400 with "already exist"). Each test uploads a release, then uploads *different
bytes under the same filenames* with `--skip-existing`: the tool must report every file as
skipped and exit 0, and the server must still serve the first bytes.

The tools are installed from PyPI by `uv tool run` (see conftest.py). twine 7 is not used
here: since 6.2 twine refuses `--skip-existing` for any non-PyPI URL without sending a request.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

from wheelyard.testing.clients import (
    Outcome,
    RequestRecorder,
    project_page,
    run,
    twine_command,
    uv_tool_command,
)
from wheelyard.testing.dist_factory import (
    TarMember,
    escaped_name,
    make_sdist,
    make_wheel,
)
from wheelyard.testing.server_fixtures import RunningServer, unique_project

# pdm 2.29 requires `hishel>=1`, but hishel 2.0 removed `SyncSqliteStorage`, which pdm imports:
# the unpinned install dies with "AttributeError: module 'hishel' has no attribute
# 'SyncSqliteStorage'". pdm's own `locked` extra pins the versions pdm was released with.
PDM = "pdm[locked]==2.*"
POETRY = "poetry==2.*"
TWINE_6_1 = "twine==6.1.0"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_server_keeps(server: RunningServer, project: str, originals: list[Path]) -> None:
    """The simple page lists exactly the first uploads, with their hashes."""
    listed = project_page(server.local_simple, project, json=True)
    assert {name: p.digests["sha256"] for name, p in listed.items()} == {
        f.name: _sha256(f) for f in originals
    }


def _assert_reported_skipped(outcome: Outcome, files: list[Path], message: str) -> None:
    outcome.succeeded()
    for path in files:
        assert message.format(filename=path.name) in outcome.text, outcome.describe()


def _keep_copies(files: list[Path], directory: Path) -> list[Path]:
    directory.mkdir()
    return [Path(shutil.copy2(f, directory / f.name)) for f in files]


def test_twine_6_1_skip_existing_reports_conflicting_files_as_skipped(
    wheelyard_server: RunningServer, tmp_path: Path, tool_env: dict[str, str]
) -> None:
    project = unique_project("twine61")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    originals = [make_wheel(first, project, "1.0"), make_sdist(first, project, "1.0")]
    top = f"{escaped_name(project)}-1.0"
    changed = [
        make_wheel(second, project, "1.0", extra_members={"extra.py": "CHANGED = 1\n"}),
        make_sdist(second, project, "1.0", extra_members=[TarMember(f"{top}/extra.py", "x")]),
    ]
    assert [f.name for f in changed] == [f.name for f in originals]
    user, password = wheelyard_server.admin

    def twine_upload(*args: str | Path) -> Outcome:
        command = uv_tool_command(TWINE_6_1, "twine", "upload", "--non-interactive")
        command += ["--disable-progress-bar", "--repository-url", wheelyard_server.local + "/"]
        command += ["--username", user, "--password", password]
        return run([*command, *args], env=tool_env)

    twine_upload(*originals).succeeded()

    outcome = twine_upload("--skip-existing", *changed)

    _assert_reported_skipped(
        outcome, changed, "Skipping {filename} because it appears to already exist"
    )
    _assert_server_keeps(wheelyard_server, project, originals)


def test_twine_6_2_and_later_refuse_skip_existing_before_sending_anything(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    # What docs/clients.md says about twine: since 6.2 the option is refused for every
    # repository but PyPI and TestPyPI, on the client side, so no server answer can help
    # (twine's settings.py); `uv publish --check-url` is the way to skip existing files.
    wheel = make_wheel(tmp_path, unique_project("twine7"), "1.0")
    user, password = wheelyard_server.admin
    with RequestRecorder("127.0.0.1", wheelyard_server.process.port) as recorder:
        outcome = run(
            [
                *twine_command(),
                "upload",
                "--non-interactive",
                "--skip-existing",
                "--repository-url",
                recorder.url + "/repositories/default/local/",
                "--username",
                user,
                "--password",
                password,
                wheel,
            ]
        ).failed()
        assert "does not have support for the following features: --skip-existing" in outcome.text
        assert recorder.requests == []


def _write_project(directory: Path, project: str, *, build_system: str, marker: int) -> None:
    """A minimal PEP 621 project with one module under src/."""
    module = directory / "src" / escaped_name(project)
    module.mkdir(parents=True, exist_ok=True)
    (module / "__init__.py").write_text(f"MARKER = {marker}\n")
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{project}"\nversion = "1.0"\ndescription = "e2e"\n'
        f'requires-python = ">=3.9"\n\n{build_system}'
    )


POETRY_BUILD_SYSTEM = (
    '[tool.poetry]\npackages = [{ include = "MODULE", from = "src" }]\n\n'
    '[build-system]\nrequires = ["poetry-core>=2.0"]\n'
    'build-backend = "poetry.core.masonry.api"\n'
)
PDM_BUILD_SYSTEM = '[build-system]\nrequires = ["pdm-backend"]\nbuild-backend = "pdm.backend"\n'


def _built(dist: Path) -> list[Path]:
    files = sorted(dist.iterdir())
    assert [f.suffix for f in files] == [".whl", ".gz"], files
    with tarfile.open(files[1]) as sdist:  # a real sdist, as the tool built it
        assert any(name.endswith("/PKG-INFO") for name in sdist.getnames())
    return files


def test_poetry_publish_skip_existing_reports_conflicting_files_as_skipped(
    wheelyard_server: RunningServer, tmp_path: Path, tool_env: dict[str, str]
) -> None:
    project = unique_project("poetry")
    source = tmp_path / "project"
    build_system = POETRY_BUILD_SYSTEM.replace("MODULE", escaped_name(project))
    _write_project(source, project, build_system=build_system, marker=1)
    user, password = wheelyard_server.admin
    env = {
        **tool_env,
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_DATA_DIR": str(tmp_path / "poetry-data"),
        "POETRY_HTTP_BASIC_WY_USERNAME": user,
        "POETRY_HTTP_BASIC_WY_PASSWORD": password,
    }

    def poetry(*args: str) -> Outcome:
        command = uv_tool_command(POETRY, "poetry", "--no-interaction", "--no-ansi", *args)
        return run(command, env=env, cwd=source)

    poetry("config", "repositories.wy", wheelyard_server.local + "/").succeeded()
    poetry("build").succeeded()
    originals = _keep_copies(_built(source / "dist"), tmp_path / "first")
    poetry("publish", "--repository", "wy").succeeded()
    _assert_server_keeps(wheelyard_server, project, originals)

    _write_project(source, project, build_system=build_system, marker=2)
    poetry("build", "--clean").succeeded()
    changed = _built(source / "dist")
    assert [f.name for f in changed] == [f.name for f in originals]
    assert [_sha256(f) for f in changed] != [_sha256(f) for f in originals]

    outcome = poetry("publish", "--repository", "wy", "--skip-existing")

    _assert_reported_skipped(outcome, changed, "Uploading {filename} File exists. Skipping")
    _assert_server_keeps(wheelyard_server, project, originals)


def test_pdm_publish_skip_existing_reports_conflicting_files_as_skipped(
    wheelyard_server: RunningServer, tmp_path: Path, tool_env: dict[str, str]
) -> None:
    project = unique_project("pdm")
    source = tmp_path / "project"
    _write_project(source, project, build_system=PDM_BUILD_SYSTEM, marker=1)
    user, password = wheelyard_server.admin
    env = {
        **tool_env,
        "PDM_HOME": str(tmp_path / "pdm-home"),
        "PDM_CACHE_DIR": str(tmp_path / "pdm-cache"),
        "PDM_CONFIG_FILE": str(tmp_path / "pdm-config.toml"),
        "PDM_LOG_DIR": str(tmp_path / "pdm-log"),
        "PDM_CHECK_UPDATE": "false",
        "PDM_NON_INTERACTIVE": "1",
    }

    def pdm(*args: str) -> Outcome:
        return run(uv_tool_command(PDM, "pdm", *args), env=env, cwd=source)

    def publish(*args: str) -> Outcome:
        target = ["--repository", wheelyard_server.local + "/"]
        return pdm(
            "publish", "--no-build", *target, "--username", user, "--password", password, *args
        )

    pdm("build").succeeded()
    originals = _keep_copies(_built(source / "dist"), tmp_path / "first")
    publish().succeeded()
    _assert_server_keeps(wheelyard_server, project, originals)

    _write_project(source, project, build_system=PDM_BUILD_SYSTEM, marker=2)
    pdm("build").succeeded()
    changed = _built(source / "dist")
    assert [f.name for f in changed] == [f.name for f in originals]
    assert [_sha256(f) for f in changed] != [_sha256(f) for f in originals]

    outcome = publish("--skip-existing")

    _assert_reported_skipped(
        outcome, changed, "Skipping {filename} because it appears to already exist"
    )
    _assert_server_keeps(wheelyard_server, project, originals)
