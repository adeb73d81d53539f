"""Real clients with credentials: twine and uv publish (password and `__token__`), pip and uv
installing from a private repository (URL userinfo, netrc, uv's per-index variables), and the
same installs failing without credentials.

Issue 4 "Done when" (first item). `__token__` with an API token as the password is PyPI's
convention (https://pypi.org/help/#apitoken); the credential sources are those pip and uv
document (URL userinfo, netrc, uv's `UV_INDEX_<NAME>_USERNAME`/`_PASSWORD`). Every client runs
with `clean_env()` (pip also `--isolated`) and no cache, so the only place a distribution can
come from is the server under test; the RequestRecorder in front of the server shows which
requests each client made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wheelyard.testing.clients import (
    PLAIN_OUTPUT,
    Outcome,
    RequestRecorder,
    make_venv,
    run,
    twine_command,
    uv_binary,
)
from wheelyard.testing.dist_factory import escaped_name, make_wheel
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server import clean_env
from wheelyard.testing.server_fixtures import RunningServer
from wheelyard.testing.uploads import upload_file

PIP_FLAGS = ["--isolated", "--no-cache-dir", "--disable-pip-version-check", "--no-input"]


@dataclass
class PrivateIndex:
    """A private repository with one released project, a reader, a writer and two tokens."""

    server: RunningServer
    repo: str
    reader: tuple[str, str]
    writer: tuple[str, str]
    write_token: str
    read_token: str
    project: str
    wheel: Path

    def simple(self, base: str | None = None) -> str:
        return f"{base or self.server.url}/repositories/{self.repo}/simple/"

    def upload_url(self) -> str:
        return f"{self.server.url}/repositories/{self.repo}/"

    def with_userinfo(self, base: str, auth: tuple[str, str]) -> str:
        return self.simple(base).replace("://", f"://{auth[0]}:{auth[1]}@", 1)

    def listed(self, project: str) -> set[str]:
        """Filenames the JSON page of `project` lists (seen as the admin)."""
        r = http.get(
            f"{self.simple()}{project}/",
            auth=self.server.admin,
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        if r.status_code == 404:
            return set()
        assert r.status_code == 200, r.text
        return {f["filename"] for f in r.json()["files"]}


@pytest.fixture(scope="module")
def index(
    wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> PrivateIndex:
    setup = ManagementApi.of(wheelyard_server)
    repo = setup.repository("private", prefix="e2e-priv")
    users = {}
    for role, level in (("reader", "read"), ("writer", "write")):
        users[role] = setup.user(f"e2e-{role}")
        setup.grant(users[role][0], repo, level)
    tokens = {
        scope: setup.token(users["writer"], [repo], scope, name=f"e2e-{scope}")["token"]
        for scope in ("read", "write")
    }
    project = unique_name("e2e-private")
    module = f"{escaped_name(project)}/__init__.py"
    wheel = make_wheel(
        tmp_path_factory.mktemp("e2e-auth-dists"),
        project,
        "1.0",
        extra_members={module: "VERSION = '1.0'\n"},
    )
    index = PrivateIndex(
        wheelyard_server,
        repo,
        users["reader"],
        users["writer"],
        tokens["write"],
        tokens["read"],
        project,
        wheel,
    )
    r = upload_file(index.upload_url(), wheel, auth=users["writer"])
    assert r.status_code == 200, r.text
    return index


@pytest.fixture(scope="module")
def pip_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with pip (its own, from ensurepip); installs go to a fresh `--target` each."""
    return make_venv(tmp_path_factory.mktemp("e2e-auth-venv") / "venv", with_pip=True)


@pytest.fixture
def recorder(wheelyard_server: RunningServer) -> Iterator[RequestRecorder]:
    with RequestRecorder("127.0.0.1", wheelyard_server.process.port) as proxy:
        yield proxy


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """clean_env with a HOME of the test's own and NETRC pointing at no file unless given."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {"HOME": str(home), "NETRC": str(tmp_path / "no-netrc"), **PLAIN_OUTPUT}
    return clean_env(**(base | extra))


def _netrc(tmp_path: Path, auth: tuple[str, str]) -> str:
    path = tmp_path / "netrc"
    path.write_text(f"machine 127.0.0.1\nlogin {auth[0]}\npassword {auth[1]}\n")
    path.chmod(0o600)
    return str(path)


def _assert_installed(target: Path, index: PrivateIndex) -> None:
    module = target / escaped_name(index.project) / "__init__.py"
    assert module.read_text() == "VERSION = '1.0'\n"


def _assert_fetched_page_metadata_and_file(recorder: RequestRecorder, index: PrivateIndex) -> None:
    base = f"/repositories/{index.repo}"
    paths = {path for method, path in recorder.requests if method == "GET"}
    wheel = f"{base}/{index.project}/1.0/{index.wheel.name}"
    assert f"{base}/simple/{index.project}/" in paths, paths
    assert wheel in paths, paths
    assert wheel + ".metadata" in paths, paths


def _pip(python: Path, target: Path, index_url: str, project: str, env: dict[str, str]) -> Outcome:
    args = [python, "-m", "pip", "install", *PIP_FLAGS, "--target", target]
    return run([*args, "--index-url", index_url, project], env=env)


def _uv_pip(python: Path, target: Path, env: dict[str, str], *args: str) -> Outcome:
    base = [uv_binary(), "pip", "install", "--no-cache", "--python", python, "--target", target]
    return run([*base, *args], env=env)


# -- publishing --------------------------------------------------------------------------------


def _release(directory: Path, prefix: str) -> tuple[str, Path]:
    project = unique_name(prefix)
    directory.mkdir(parents=True, exist_ok=True)
    return project, make_wheel(directory, project, "1.0")


@pytest.mark.parametrize("credentials", ["password", "token"])
def test_twine_uploads_to_a_private_repository(
    index: PrivateIndex, tmp_path: Path, credentials: str
) -> None:
    project, wheel = _release(tmp_path, f"twine-{credentials}")
    user, password = index.writer if credentials == "password" else ("__token__", index.write_token)
    args = [*twine_command(), "upload", "--non-interactive", "--disable-progress-bar"]
    args += ["--repository-url", index.upload_url(), "--username", user, "--password", password]

    outcome = run([*args, wheel], env=_env(tmp_path))

    outcome.succeeded()
    assert index.listed(project) == {wheel.name}


@pytest.mark.parametrize("credentials", ["password", "token"])
def test_uv_publish_uploads_to_a_private_repository(
    index: PrivateIndex, tmp_path: Path, credentials: str
) -> None:
    project, wheel = _release(tmp_path, f"uvpub-{credentials}")
    args = [uv_binary(), "publish", "--no-cache", "--publish-url", index.upload_url()]
    if credentials == "password":
        args += ["--username", index.writer[0], "--password", index.writer[1]]
    else:
        args += ["--token", index.write_token]

    outcome = run([*args, wheel], env=_env(tmp_path))

    outcome.succeeded()
    assert index.listed(project) == {wheel.name}


def test_uv_publish_with_a_read_token_is_refused_with_403(
    index: PrivateIndex, tmp_path: Path
) -> None:
    project, wheel = _release(tmp_path, "uvpub-read")
    args = [uv_binary(), "publish", "--no-cache", "--publish-url", index.upload_url()]

    outcome = run([*args, "--token", index.read_token, wheel], env=_env(tmp_path))

    outcome.failed()
    assert "403 Forbidden" in outcome.text, outcome.describe()
    assert index.read_token not in outcome.output
    assert index.listed(project) == set()


# -- installing --------------------------------------------------------------------------------


def test_pip_installs_from_a_private_repository_with_credentials_in_the_url(
    index: PrivateIndex, pip_python: Path, recorder: RequestRecorder, tmp_path: Path
) -> None:
    url = index.with_userinfo(recorder.url, index.reader)

    outcome = _pip(pip_python, tmp_path / "t", url, index.project, _env(tmp_path))

    outcome.succeeded()
    _assert_installed(tmp_path / "t", index)
    _assert_fetched_page_metadata_and_file(recorder, index)


def test_pip_installs_from_a_private_repository_with_netrc(
    index: PrivateIndex, pip_python: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, NETRC=_netrc(tmp_path, ("__token__", index.read_token)))

    outcome = _pip(pip_python, tmp_path / "t", index.simple(), index.project, env)

    outcome.succeeded()
    _assert_installed(tmp_path / "t", index)


def test_pip_with_a_token_for_another_repository_installs_from_the_public_root(
    index: PrivateIndex, pip_python: Path, tmp_path: Path
) -> None:
    # Issue 9: a credential never has fewer rights than anonymous. The token opens only the
    # private repository; the public root `/simple/` (the group default/all) must still serve
    # what it serves anonymously (it used to answer 403: "No matching distribution").
    project = unique_name("e2e-public")
    wheel = make_wheel(
        tmp_path,
        project,
        "1.0",
        extra_members={f"{escaped_name(project)}/__init__.py": "VERSION = '1.0'\n"},
    )
    assert index.server.upload(wheel).status_code == 200
    env = _env(tmp_path, NETRC=_netrc(tmp_path, ("__token__", index.read_token)))

    outcome = _pip(pip_python, tmp_path / "t", f"{index.server.url}/simple/", project, env)

    outcome.succeeded()
    module = tmp_path / "t" / escaped_name(project) / "__init__.py"
    assert module.read_text() == "VERSION = '1.0'\n"


def test_pip_without_credentials_finds_nothing_and_the_server_answered_401(
    index: PrivateIndex, pip_python: Path, recorder: RequestRecorder, tmp_path: Path
) -> None:
    url = index.simple(recorder.url)

    outcome = _pip(pip_python, tmp_path / "t", url, index.project, _env(tmp_path))

    outcome.failed()
    assert "No matching distribution found" in outcome.text, outcome.describe()
    assert not (tmp_path / "t" / escaped_name(index.project)).exists()
    page = f"/repositories/{index.repo}/simple/{index.project}/"
    assert ("GET", page) in recorder.requests
    assert http.get(f"{index.server.url}{page}").status_code == 401


def test_uv_installs_from_a_private_repository_with_credentials_in_the_url(
    index: PrivateIndex, pip_python: Path, recorder: RequestRecorder, tmp_path: Path
) -> None:
    url = index.with_userinfo(recorder.url, index.reader)

    outcome = _uv_pip(
        pip_python, tmp_path / "t", _env(tmp_path), "--default-index", url, index.project
    )

    outcome.succeeded()
    _assert_installed(tmp_path / "t", index)
    _assert_fetched_page_metadata_and_file(recorder, index)
    assert index.reader[1] not in outcome.output


def test_uv_installs_from_a_private_repository_with_netrc(
    index: PrivateIndex, pip_python: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, NETRC=_netrc(tmp_path, index.reader))

    outcome = _uv_pip(
        pip_python, tmp_path / "t", env, "--default-index", index.simple(), index.project
    )

    outcome.succeeded()
    _assert_installed(tmp_path / "t", index)


@pytest.mark.parametrize("flag", ["--index", "--default-index"])
def test_uv_installs_with_per_index_credential_variables(
    index: PrivateIndex, pip_python: Path, tmp_path: Path, flag: str
) -> None:
    env = _env(
        tmp_path,
        UV_INDEX_PRIV_USERNAME="__token__",
        UV_INDEX_PRIV_PASSWORD=index.read_token,
    )

    outcome = _uv_pip(
        pip_python, tmp_path / "t", env, flag, f"priv={index.simple()}", index.project
    )

    outcome.succeeded()
    _assert_installed(tmp_path / "t", index)


def test_uv_without_credentials_fails_and_the_server_answered_401(
    index: PrivateIndex, pip_python: Path, recorder: RequestRecorder, tmp_path: Path
) -> None:
    url = index.simple(recorder.url)

    outcome = _uv_pip(
        pip_python, tmp_path / "t", _env(tmp_path), "--default-index", url, index.project
    )

    outcome.failed()
    assert "(401 Unauthorized)" in outcome.text, outcome.describe()
    assert not (tmp_path / "t" / escaped_name(index.project)).exists()
    page = f"/repositories/{index.repo}/simple/{index.project}/"
    assert ("GET", page) in recorder.requests
    assert http.get(f"{index.server.url}{page}").status_code == 401
