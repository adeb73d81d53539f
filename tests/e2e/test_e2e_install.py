"""Installing from a hosted repository with the real installers: pip (a fresh venv's own pip)
and uv, including yanked releases (PEP 592: skipped unless an exact pin asks for one;
docs/standards.md §6) and a direct file URL.

Every install runs with `clean_env()`, `--isolated`/`UV_NO_CONFIG` and no cache, so the only
place a distribution can come from is the Wheelyard server under test.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from wheelyard.testing.clients import (
    Outcome,
    installed_version,
    make_venv,
    project_page,
    run,
    uv_binary,
)
from wheelyard.testing.dist_factory import escaped_name, make_wheel
from wheelyard.testing.server_fixtures import RunningServer, unique_project

PIP_FLAGS = ["--isolated", "--no-cache-dir", "--disable-pip-version-check", "--no-input"]
YANK_REASON = "broken build"


def _release(server: RunningServer, directory: Path, project: str, version: str) -> Path:
    """Upload a wheel of `project` whose module records its version; return the wheel."""
    directory.mkdir(parents=True, exist_ok=True)
    module = f"{escaped_name(project)}/__init__.py"
    wheel = make_wheel(
        directory, project, version, extra_members={module: f"VERSION = {version!r}\n"}
    )
    response = server.upload(wheel)
    assert response.status_code == 200, response.text
    return wheel


def _yank(server: RunningServer, project: str, version: str) -> None:
    url = (
        f"{server.url}/api/v1/repositories/default/local/projects/{project}/versions/{version}/yank"
    )
    response = httpx.post(url, json={"reason": YANK_REASON}, auth=server.admin)
    assert response.status_code == 200, response.text


def _project_with_newest_yanked(server: RunningServer, directory: Path) -> str:
    """A project with 1.0, 2.0 and 3.0 where 3.0 is yanked."""
    project = unique_project("yankee")
    for version in ("1.0", "2.0", "3.0"):
        _release(server, directory, project, version)
    _yank(server, project, "3.0")
    listed = project_page(server.local_simple, project, json=False)
    assert listed[f"{escaped_name(project)}-3.0-py3-none-any.whl"].yanked_reason == YANK_REASON
    return project


def _imported_version(python: Path, project: str) -> str:
    """`VERSION` of the installed module: proves which wheel's code is on disk."""
    code = f"import {escaped_name(project)} as m; print(m.VERSION)"
    return run([python, "-c", code]).succeeded().output.strip()


def _pip_install(python: Path, server: RunningServer, requirement: str) -> Outcome:
    args = [python, "-m", "pip", "install", *PIP_FLAGS, "--index-url", server.local_simple]
    return run([*args, requirement])


def _uv_pip(command: str, server: RunningServer, *args: str | Path) -> Outcome:
    # Deliberately without the trailing slash, as users often paste it: uv must still find
    # `<index>/<project>/` (pip is given the canonical form with the slash).
    index = server.local_simple.rstrip("/")
    return run([uv_binary(), "pip", command, "--no-cache", "--index-url", index, *args])


def test_pip_installs_the_newest_version_that_is_not_yanked(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = _project_with_newest_yanked(wheelyard_server, tmp_path / "dists")
    python = make_venv(tmp_path / "venv", with_pip=True)

    outcome = _pip_install(python, wheelyard_server, project)

    outcome.succeeded()
    assert installed_version(python, project) == "2.0"
    assert _imported_version(python, project) == "2.0"


def test_pip_installs_a_pinned_yanked_version_with_a_warning(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = _project_with_newest_yanked(wheelyard_server, tmp_path / "dists")
    python = make_venv(tmp_path / "venv", with_pip=True)

    outcome = _pip_install(python, wheelyard_server, f"{project}==3.0")

    outcome.succeeded()
    assert "yanked version" in outcome.output, outcome.describe()
    assert f"Reason for being yanked: {YANK_REASON}" in outcome.output, outcome.describe()
    assert _imported_version(python, project) == "3.0"


def test_uv_pip_install_picks_the_newest_version_that_is_not_yanked(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = _project_with_newest_yanked(wheelyard_server, tmp_path / "dists")
    python = make_venv(tmp_path / "venv", with_pip=False)

    outcome = _uv_pip("install", wheelyard_server, "--python", python, project)

    outcome.succeeded()
    assert installed_version(python, project) == "2.0"
    assert _imported_version(python, project) == "2.0"


def test_uv_pip_install_of_a_pinned_yanked_version_installs_it_with_a_warning(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = _project_with_newest_yanked(wheelyard_server, tmp_path / "dists")
    python = make_venv(tmp_path / "venv", with_pip=False)

    outcome = _uv_pip("install", wheelyard_server, "--python", python, f"{project}==3.0")

    outcome.succeeded()
    assert "yanked" in outcome.output and YANK_REASON in outcome.output, outcome.describe()
    assert _imported_version(python, project) == "3.0"


def test_uv_pip_compile_fails_when_only_yanked_versions_match(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("allyanked")
    _release(wheelyard_server, tmp_path, project, "1.0")
    _yank(wheelyard_server, project, "1.0")
    requirements = tmp_path / "requirements.in"
    requirements.write_text(f"{project}\n")

    outcome = _uv_pip("compile", wheelyard_server, requirements)

    outcome.failed()
    assert f"{project}==1.0 was yanked" in outcome.output, outcome.describe()


def test_uv_pip_compile_skips_a_newest_yanked_version_for_an_unpinned_range(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = _project_with_newest_yanked(wheelyard_server, tmp_path / "dists")
    requirements = tmp_path / "requirements.in"
    requirements.write_text(f"{project}>=1\n{project}!=1.0\n")

    compiled = _uv_pip("compile", wheelyard_server, requirements).succeeded()
    assert f"{project}==2.0" in compiled.output, compiled.describe()

    requirements.write_text(f"{project}>2\n")  # only the yanked 3.0 matches
    only_yanked = _uv_pip("compile", wheelyard_server, requirements)

    only_yanked.failed()
    assert "yanked" in only_yanked.output, only_yanked.describe()


def test_uv_pip_install_from_a_direct_file_url(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("direct")
    wheel = _release(wheelyard_server, tmp_path, project, "1.5")
    url = f"{wheelyard_server.local}/{project}/1.5/{wheel.name}"
    python = make_venv(tmp_path / "venv", with_pip=False)

    outcome = run(
        [uv_binary(), "pip", "install", "--no-cache", "--no-index", "--python", python, url]
    )

    outcome.succeeded()
    assert _imported_version(python, project) == "1.5"
