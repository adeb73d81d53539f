"""docs/clients.md, run: every command block of the page against a real server, with the real
clients installed from PyPI.

Each block of the page is marked `<!-- test: NAME -->`; `Workspace.run` and
`Workspace.add_config`, given NAME, are the only way a test gets its commands, and
`test_every_block_of_the_page_is_marked_and_run` checks that the page's marked blocks are
exactly the ones this module runs (and that no block is unmarked). A block runs as written
(`bash -euo pipefail`), after one substitution: the page's `127.0.0.1:8000` becomes this
module's server. Its only inputs are `WHEELYARD_TOKEN` (and `ADMIN_PASSWORD` for the block
that mints a token).

The clients run with the machine's package sources hidden: `clean_env()` (no PIP_*/UV_*
variables, `PIP_CONFIG_FILE=/dev/null`), HOME and every XDG directory inside the test's tmp
dir (so no user configuration, keyring or cache, and nothing is found in a cache), and a PATH
of only the test's venv, the client's own tool environment, uv and the system directories.
The server's `pypi` proxy points at a local upstream holding one project (`example-upstream`):
whatever a client installs came from this server. The clients themselves are installed once per
session from PyPI (`client()`), which is the one thing that touches the public registry.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from wheelyard.testing.clients import (
    PLAIN_OUTPUT,
    Outcome,
    installed_version,
    make_venv,
    run,
    uv_binary,
)
from wheelyard.testing.dist_factory import escaped_name, make_sdist, make_wheel
from wheelyard.testing.management import ManagementApi, http
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD, RunningServer
from wheelyard.testing.uploads import upload_file
from wheelyard.testing.upstream import LocalUpstream

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
DOC_HOST = "127.0.0.1:8000"
_MARKED = re.compile(r"<!-- test: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)

# pdm's `locked` extra pins what pdm was released with (see test_e2e_skip_existing.py).
POETRY, PDM, HATCH, FLIT = "poetry==2.*", "pdm[locked]==2.*", "hatch==1.*", "flit"
TWINE, PIP_TOOLS, PIPX = "twine", "pip-tools", "pipx"
KEYRING = "keyring keyrings.alt"


def _blocks() -> dict[str, tuple[str, str]]:
    text = DOC.read_text()
    found = {name: (language, body) for name, language, body in _MARKED.findall(text)}
    return found


def doc_block(name: str, server: RunningServer) -> str:
    """The block `name` of docs/clients.md, pointed at `server`."""
    _language, body = _blocks()[name]
    return body.replace(DOC_HOST, server.url.removeprefix("http://")) + "\n"


def test_every_block_of_the_page_is_marked_and_run() -> None:
    text = DOC.read_text()
    fences = len(re.findall(r"^```\w+$", text, re.MULTILINE))
    marked = _blocks()
    assert fences == len(marked), "every block of docs/clients.md needs a <!-- test: --> mark"
    source = Path(__file__).read_text()
    run_here = set(re.findall(r'\.(?:run|add_config)\(\s*"([\w-]+)"', source))
    assert set(marked) == run_here, set(marked) ^ run_here


# -- the server, its projects and the clients ----------------------------------------------------


@dataclass
class Registry:
    server: RunningServer
    token: str  # write on default/local and default/internal
    dists: Path


def _module_wheel(directory: Path, name: str, body: str, **extra: str) -> Path:
    module = escaped_name(name)
    members = {f"{module}/__init__.py": body, **extra}
    return make_wheel(directory, name, "1.0", extra_members=members)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("clients-doc")
    with LocalUpstream(root / "upstream") as upstream:
        upstream.add_project("example-upstream")
        env = {
            "WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "WHEELYARD_PYPI_PROXY": upstream.simple_url,
        }
        with ServerProcess(root / "server", env) as process:
            server = RunningServer(process, process.url)
            api = ManagementApi.of(server)
            r = http.post(
                f"{server.url}/api/v1/repositories",
                json={"name": "internal", "type": "hosted", "visibility": "private"},
                auth=server.admin,
            )
            assert r.status_code == 201, r.text
            dists = root / "dists"
            dists.mkdir()
            project = _module_wheel(dists, "example-project", "VERSION = '1.0'\n")
            cli = _module_wheel(
                dists,
                "example-cli",
                "def main():\n    print('hello from example-cli')\n",
                **{
                    "example_cli-1.0.dist-info/entry_points.txt": (
                        "[console_scripts]\nexample-cli = example_cli:main\n"
                    )
                },
            )
            secret = _module_wheel(dists, "example-internal", "")
            for wheel, repo in (
                (project, "default/local"),
                (project, "default/internal"),
                (secret, "default/internal"),
                (cli, "default/local"),
            ):
                r = upload_file(server.upload_url(repo), wheel, auth=server.admin)
                assert r.status_code == 200, r.text
            token = api.token(
                server.admin, ["default/local", "default/internal"], "write", name="docs"
            )["token"]
            yield Registry(server, token, dists)


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`client(requirement)`: the bin directory of a virtual environment with `requirement`
    (one or more, space-separated) installed from PyPI, once per session (the machine's uv
    cache makes that fast)."""
    root = tmp_path_factory.mktemp("clients")
    made: dict[str, Path] = {}

    def bin_of(requirement: str) -> Path:
        if requirement not in made:
            venv = root / re.sub(r"\W+", "-", requirement)
            env = clean_env(UV_PYTHON_DOWNLOADS="never")
            uv = uv_binary()
            run([uv, "venv", "--quiet", "--python", sys.executable, venv], env=env).succeeded()
            python = venv / "bin" / "python"
            run(
                [uv, "pip", "install", "--quiet", "--python", python, *requirement.split()],
                env=env,
                timeout=600,
            ).succeeded()
            made[requirement] = venv / "bin"
        return made[requirement]

    return bin_of


@dataclass
class Workspace:
    """A test's project directory, home and venv, and how to run a block there."""

    registry: Registry
    directory: Path
    home: Path
    venv: Path  # its bin directory: python and pip
    tools: list[Path]
    extra: dict[str, str] = field(default_factory=dict)  # variables the test itself needs

    def env(self) -> dict[str, str]:
        env = clean_env(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_STATE_HOME=str(self.home / ".local" / "state"),
            PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
            UV_PYTHON_DOWNLOADS="never",
            # The suite may run as root (CI); flit refuses to install as root without this.
            FLIT_ROOT_INSTALL="1",
            WHEELYARD_TOKEN=self.registry.token,
            ADMIN_PASSWORD=ADMIN_PASSWORD,
            PATH=os.pathsep.join(
                [
                    str(self.venv),
                    *map(str, self.tools),
                    str(Path(uv_binary()).parent),
                    str(self.home / ".local" / "bin"),
                    "/usr/local/bin:/usr/bin:/bin",
                ]
            ),
            **PLAIN_OUTPUT,
        )
        # The project's own pyproject.toml is the configuration under test: uv reads it.
        env.pop("UV_NO_CONFIG")
        env.update(self.extra)
        return env

    def run(self, name: str, *, ok: bool = True) -> Outcome:
        """Run block `name` of the page here; asserts success unless `ok` is False."""
        script = doc_block(name, self.registry.server)
        outcome = run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=self.env(),
            cwd=self.directory,
            timeout=600,
        )
        return outcome.succeeded() if ok else outcome

    def add_config(self, name: str, path: str = "pyproject.toml") -> None:
        """Append block `name` (TOML or INI) of the page to `path` (relative to the project,
        or `~/...` for the home directory)."""
        target = self.home / path[2:] if path.startswith("~/") else self.directory / path
        with target.open("a") as out:
            out.write("\n" + doc_block(name, self.registry.server))

    def with_pip(self) -> Workspace:
        """Make `python` and `pip` on the PATH those of a venv with pip."""
        self.venv = make_venv(self.home.parent / "pip-venv", with_pip=True).parent
        return self

    def pyproject(self, name: str, extra: str = "") -> None:
        (self.directory / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "1.0"\nrequires-python = ">=3.11"\n'
            f'description = "a project of docs/clients.md"\ndependencies = []\n{extra}'
        )

    def dist(self, name: str) -> list[Path]:
        """A wheel and an sdist of `name` 1.0 in `dist/`."""
        directory = self.directory / "dist"
        directory.mkdir(exist_ok=True)
        return [
            make_wheel(directory, name, "1.0"),
            make_sdist(directory, name, "1.0"),
        ]


@pytest.fixture
def workspace(
    registry: Registry, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    # Without pip (ensurepip costs seconds); the tests that run pip ask for `with_pip()`.
    venv = make_venv(tmp_path / "venv", with_pip=False).parent
    return Workspace(registry, project, home, venv, [])


def published(registry: Registry, project: str, repo: str = "default/local") -> set[str]:
    """Filenames the hosted repository lists for `project` (as the admin)."""
    r = http.get(
        f"{registry.server.url}/repositories/{repo}/simple/{project}/",
        auth=registry.server.admin,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    return {f["filename"] for f in r.json()["files"]} if r.status_code == 200 else set()


def installed(workspace: Workspace, python: Path | None = None) -> None:
    code = "import example_project; assert example_project.VERSION == '1.0'"
    run([python or workspace.venv / "python", "-c", code], env=workspace.env()).succeeded()


def assert_resolves(url: str) -> None:
    """A URL a client printed leads to a page (through the redirect to the web interface)."""
    r = httpx.get(url, follow_redirects=True, timeout=30)
    assert r.status_code == 200 and "/ui/" in str(r.url), (url, r.status_code, r.url)


# -- the blocks ----------------------------------------------------------------------------------


def test_create_token(workspace: Workspace) -> None:
    outcome = workspace.run("create-token")
    assert json.loads(outcome.output)["token"].startswith("wy_")


def test_pip(workspace: Workspace) -> None:
    workspace.with_pip()
    workspace.run("pip-install")
    installed(workspace)


def test_pip_from_the_proxy(workspace: Workspace) -> None:
    workspace.with_pip()
    workspace.run("pip-install-proxy")
    assert installed_version(workspace.venv / "python", "example-upstream") == "1.0"


def test_pip_with_a_token_in_the_url(workspace: Workspace) -> None:
    workspace.with_pip()
    workspace.run("pip-install-token")
    installed(workspace)


def test_pip_search(workspace: Workspace) -> None:
    workspace.with_pip()
    outcome = workspace.run("pip-search")
    assert "example-project (1.0)" in outcome.output, outcome.describe()
    assert "example-cli (1.0)" in outcome.output
    # A project only a private repository holds is never shown to an anonymous caller.
    assert "example-internal" not in outcome.output


def test_uv_pip_install(workspace: Workspace) -> None:
    workspace.run("uv-pip-install")
    installed(workspace, workspace.directory / ".venv" / "bin" / "python")


def test_uv_with_netrc(workspace: Workspace) -> None:
    workspace.run("uv-netrc")
    installed(workspace, workspace.directory / ".venv" / "bin" / "python")


def test_uv_with_keyring(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(KEYRING))
    # A keyring that keeps its secrets in a file under the test's home (there is no desktop
    # keyring here); everything else is the page's block as written.
    workspace.extra["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    workspace.run("uv-keyring")
    installed(workspace, workspace.directory / ".venv" / "bin" / "python")


def test_uv_project_adds_syncs_and_publishes_with_check_url(workspace: Workspace) -> None:
    workspace.pyproject("uv-published")
    workspace.add_config("uv-project-config")
    files = workspace.dist("uv-published")
    outcome = workspace.run("uv-project")
    installed(workspace, workspace.directory / ".venv" / "bin" / "python")
    assert published(workspace.registry, "uv-published") == {f.name for f in files}
    assert "Skipping" in outcome.output or "skipping" in outcome.output, outcome.describe()


def test_uv_publish_check_url(workspace: Workspace) -> None:
    files = workspace.dist("uv-checked")
    workspace.run("uv-publish-check-url")
    workspace.run("uv-publish-check-url")  # again: skipped, not refused
    assert published(workspace.registry, "uv-checked") == {f.name for f in files}


def test_poetry_installs(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(POETRY))
    workspace.pyproject("poetry-consumer", "\n[tool.poetry]\npackage-mode = false\n")
    workspace.run("poetry-install")
    venv = run(["poetry", "env", "info", "--path"], env=workspace.env(), cwd=workspace.directory)
    installed(workspace, Path(venv.succeeded().output.strip().splitlines()[-1]) / "bin" / "python")


def test_poetry_publishes(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(POETRY))
    workspace.pyproject("poetry-published")
    files = workspace.dist("poetry-published")
    workspace.run("poetry-publish")
    assert published(workspace.registry, "poetry-published") == {f.name for f in files}


def test_pdm_installs(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(PDM))
    # An application, not a library: pdm does not build and install the project itself.
    workspace.pyproject("pdm-consumer", "\n[tool.pdm]\ndistribution = false\n")
    workspace.add_config("pdm-config")
    workspace.run("pdm-install")
    installed(workspace, workspace.directory / ".venv" / "bin" / "python")


def test_pdm_publishes(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(PDM))
    workspace.pyproject("pdm-published")
    files = workspace.dist("pdm-published")
    workspace.run("pdm-publish")
    assert published(workspace.registry, "pdm-published") == {f.name for f in files}


def test_hatch_installs(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(HATCH))
    workspace.pyproject("hatch-consumer")
    workspace.add_config("hatch-config")
    workspace.run("hatch-install")


def test_hatch_publishes_and_its_printed_url_resolves(
    workspace: Workspace, client: Callable[[str], Path]
) -> None:
    workspace.tools.append(client(HATCH))
    workspace.pyproject("hatch-published")
    files = workspace.dist("hatch-published")
    outcome = workspace.run("hatch-publish")
    assert published(workspace.registry, "hatch-published") == {f.name for f in files}
    urls = re.findall(r"http://\S+/hatch-published/1\.0/", outcome.output)
    assert urls, outcome.describe()
    for url in urls:
        assert_resolves(url)
    # Again: hatch learns from `+simple` that the files exist and skips them.
    again = workspace.run("hatch-publish")
    assert "already exists" in again.output, again.describe()


def _flit_project(workspace: Workspace, name: str, dependencies: str = "") -> None:
    module = escaped_name(name)
    (workspace.directory / module).mkdir()
    (workspace.directory / module / "__init__.py").write_text(f'"""{name}."""\n')
    (workspace.directory / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["flit_core>=3.4"]\nbuild-backend = "flit_core.buildapi"\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\ndescription = "flit test"\n'
        f"dependencies = [{dependencies}]\n"
    )


def test_twine_uploads_with_pypirc(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(TWINE))
    workspace.add_config("pypirc", "~/.pypirc")
    files = workspace.dist("twine-published")
    workspace.run("twine-upload")
    assert published(workspace.registry, "twine-published") == {f.name for f in files}


def test_flit_publishes_with_pypirc_and_its_printed_url_resolves(
    workspace: Workspace, client: Callable[[str], Path]
) -> None:
    workspace.tools.append(client(FLIT))
    workspace.add_config("pypirc", "~/.pypirc")
    _flit_project(workspace, "flit-published")
    outcome = workspace.run("flit-publish")
    assert {n.split("-")[0] for n in published(workspace.registry, "flit-published")} == {
        "flit_published"
    }
    urls = re.findall(r"Package is at (http://\S+)", outcome.output)
    assert urls, outcome.describe()
    for url in urls:
        assert_resolves(url)


def test_flit_installs_dependencies(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(FLIT))
    _flit_project(workspace, "flit-consumer", '"example-project"')
    workspace.with_pip()
    workspace.run("flit-install")
    installed(workspace)


def test_pip_compile(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(PIP_TOOLS))
    workspace.run("pip-compile")
    assert "example-project==1.0" in (workspace.directory / "requirements.txt").read_text()


def test_pipx_installs_from_the_group(workspace: Workspace, client: Callable[[str], Path]) -> None:
    workspace.tools.append(client(PIPX))
    outcome = workspace.run("pipx-install")
    assert "hello from example-cli" in outcome.output, outcome.describe()
