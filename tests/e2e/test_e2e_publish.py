"""Publishing with the real clients: twine 7 and uv publish against a `wheelyard serve` process.

An upload appears at once with its sha256, size and upload time; an identical re-upload
succeeds without a second entry (docs/standards.md §7); `uv publish --check-url` skips files
already there and fails on different bytes, which needs read-after-write on simple pages
(docs/architecture.md, "The hot read path").
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest

from wheelyard.testing.clients import Outcome, project_page, run, twine_command, uv_binary
from wheelyard.testing.dist_factory import make_sdist, make_wheel
from wheelyard.testing.server_fixtures import RunningServer, unique_project

UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def _wheel_and_sdist(directory: Path, project: str, version: str = "1.0") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [make_wheel(directory, project, version), make_sdist(directory, project, version)]


def _assert_listed_exactly(server: RunningServer, project: str, files: list[Path]) -> None:
    """HTML and JSON list exactly `files`, each with its sha256, size and upload time, and
    each link downloads the very bytes that were uploaded."""
    html = project_page(server.local_simple, project, json=False)
    json_page = project_page(server.local_simple, project, json=True)
    assert set(html) == set(json_page) == {f.name for f in files}
    raw = httpx.get(
        f"{server.local_simple}{project}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    for path in files:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert html[path.name].digests == {"sha256": digest}
        assert json_page[path.name].digests["sha256"] == digest
        assert json_page[path.name].size == len(data)
        (entry,) = [f for f in raw["files"] if f["filename"] == path.name]
        assert UPLOAD_TIME.match(entry["upload-time"]), entry
        download = httpx.get(html[path.name].url)
        assert download.status_code == 200, download.text
        assert download.content == data


def _twine_upload(
    server: RunningServer, url: str, *files: Path, skip_existing: bool = False
) -> Outcome:
    user, password = server.admin
    args = [*twine_command(), "upload", "--non-interactive", "--disable-progress-bar"]
    args += ["--repository-url", url, "--username", user, "--password", password]
    args += ["--skip-existing"] if skip_existing else []
    return run([*args, *files])


@pytest.mark.parametrize("upload_path", ["/", "/legacy/"], ids=["repository-url", "legacy-url"])
def test_twine_upload_lists_wheel_and_sdist_with_sha256_size_and_upload_time(
    wheelyard_server: RunningServer, tmp_path: Path, upload_path: str
) -> None:
    project = unique_project("twine")
    files = _wheel_and_sdist(tmp_path, project)

    outcome = _twine_upload(wheelyard_server, wheelyard_server.local + upload_path, *files)

    outcome.succeeded()
    _assert_listed_exactly(wheelyard_server, project, files)


def test_twine_reupload_of_identical_files_succeeds_without_a_second_entry(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("twine-again")
    files = _wheel_and_sdist(tmp_path, project)
    url = wheelyard_server.local + "/"
    _twine_upload(wheelyard_server, url, *files).succeeded()

    again = _twine_upload(wheelyard_server, url, *files)

    again.succeeded()
    assert "Skipping" not in again.output  # twine 7 did upload; the server said 200
    _assert_listed_exactly(wheelyard_server, project, files)


def _uv_publish(server: RunningServer, *files: Path, check_url: str | None = None) -> Outcome:
    user, password = server.admin
    args = [uv_binary(), "publish", "--no-cache", "--publish-url", server.local]
    args += ["--username", user, "--password", password]
    args += ["--check-url", check_url] if check_url else []
    return run([*args, *files])


def test_uv_publish_without_trailing_slash_to_a_fresh_project(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("uvpub")
    files = _wheel_and_sdist(tmp_path, project)

    outcome = _uv_publish(wheelyard_server, *files)  # publish URL without a trailing slash

    outcome.succeeded()
    _assert_listed_exactly(wheelyard_server, project, files)


def test_uv_publish_check_url_skips_existing_files_and_fails_on_different_bytes(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("uvcheck")
    files = _wheel_and_sdist(tmp_path / "first", project)
    check_url = wheelyard_server.local_simple
    _uv_publish(wheelyard_server, *files).succeeded()

    again = _uv_publish(wheelyard_server, *files, check_url=check_url)

    again.succeeded()
    for path in files:
        assert f"File {path.name} already exists, skipping" in again.output, again.describe()

    changed = make_wheel(tmp_path, project, "1.0", extra_members={"extra.py": "CHANGED = True\n"})
    assert changed.name == files[0].name
    assert changed.read_bytes() != files[0].read_bytes()

    mismatch = _uv_publish(wheelyard_server, changed, check_url=check_url)

    mismatch.failed()
    assert "do not match" in mismatch.output, mismatch.describe()
    assert hashlib.sha256(changed.read_bytes()).hexdigest() in mismatch.output
    _assert_listed_exactly(wheelyard_server, project, files)  # the stored file is unchanged


def test_uv_publish_check_url_of_another_spelling_of_a_stored_file(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    """`pkg-1.0.0-...whl` is the stored `pkg-1.0-...whl` to installers (issue 9), and to uv:
    `--check-url` matches index files by parsed name, version and tags, not by spelling. The
    same bytes under that name are skipped as existing; other bytes are refused by uv itself
    against the stored file's hash. The index still lists the first files only."""
    project = unique_project("uvspell")
    files = _wheel_and_sdist(tmp_path / "first", project)
    _uv_publish(wheelyard_server, *files).succeeded()
    wheel = files[0]
    renamed_dir = tmp_path / "renamed"
    renamed_dir.mkdir()
    renamed = renamed_dir / wheel.name.replace("-1.0-", "-1.0.0-")
    renamed.write_bytes(wheel.read_bytes())

    again = _uv_publish(wheelyard_server, renamed, check_url=wheelyard_server.local_simple)

    again.succeeded()
    assert "already exists, skipping" in again.output, again.describe()
    other = make_wheel(
        tmp_path, project, "1.0", filename=renamed.name, extra_members={"x.py": "X = 1\n"}
    )
    clash = _uv_publish(wheelyard_server, other, check_url=wheelyard_server.local_simple)

    clash.failed()
    assert "do not match" in clash.output, clash.describe()
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in clash.output
    _assert_listed_exactly(wheelyard_server, project, files)
