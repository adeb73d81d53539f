"""pip and uv installing through the proxy repository `default/pypi` from a local upstream.

The upstream (a real HTTP server the test starts) serves `app`, which depends on `libone` and
`libtwo`, which depends on `libthree`. Installs must work with and without the trailing slash
and through the root alias, fetch every upstream file only once however often they run, and
keep working with the upstream stopped, also after the server restarts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wheelyard.testing.clients import (
    installed_version,
    make_venv,
    pip_install,
    uv_pip_install,
)
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import ADMIN_PASSWORD
from wheelyard.testing.upstream import LocalUpstream

PACKAGES = {"app": "1.2", "libone": "2.0", "libtwo": "1.1", "libthree": "0.9"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    up = LocalUpstream(tmp_path_factory.mktemp("upstream"))
    up.add_project("libthree", ("0.8", "0.9"))
    up.add_project("libtwo", ("1.0", "1.1"), requires_dist=("libthree>=0.9",))
    up.add_project("libone", ("2.0",), requires_python=">=3.8")
    # 2.0 is yanked upstream: the proxy must carry that through, so installs pick 1.2.
    up.add_project(
        "app",
        ("1.2", "2.0"),
        requires_dist=("libone>=2", "libtwo>=1.0"),
        yanked={"2.0": "broken"},
    )
    with up:
        yield up


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxy-server")


def _server(data_dir: Path, upstream: LocalUpstream) -> ServerProcess:
    return ServerProcess(
        data_dir,
        {"WHEELYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "WHEELYARD_PYPI_PROXY": upstream.simple_url},
    )


def _uv_install(index: str, target: Path) -> str:
    python = make_venv(target, with_pip=False)
    outcome = uv_pip_install(python, index, "app")
    assert outcome.succeeded(), outcome.describe()
    return str(python)


def _pip_install(index: str, target: Path) -> str:
    python = make_venv(target, with_pip=True)
    outcome = pip_install(python, index, "app")
    assert outcome.succeeded(), outcome.describe()
    return str(python)


def _installed_all(python: str) -> None:
    for name, version in PACKAGES.items():
        assert installed_version(Path(python), name) == version, name


def test_installs_fetch_each_upstream_file_once_and_survive_outages(
    upstream: LocalUpstream, data_dir: Path, tmp_path: Path
) -> None:
    server = _server(data_dir, upstream).start()
    try:
        proxy = f"{server.url}/repositories/default/pypi/simple"
        _installed_all(_uv_install(proxy, tmp_path / "uv1"))  # no trailing slash
        _installed_all(_pip_install(proxy + "/", tmp_path / "pip1"))
        _installed_all(_uv_install(f"{server.url}/simple/", tmp_path / "uv-root"))  # root alias
        for name, version in PACKAGES.items():
            wheel = next(
                f
                for f in upstream.project(name).files
                if f.filename.startswith(f"{name}-{version}-")
            )
            assert upstream.file_hits(wheel.filename) == 1, wheel.filename

        upstream.stop()
        try:
            _installed_all(_uv_install(proxy, tmp_path / "uv-down"))
            _installed_all(_pip_install(proxy + "/", tmp_path / "pip-down"))
        finally:
            upstream.start()
    finally:
        server.stop()

    # Restarted, with the upstream down: pages and files come from what was persisted.
    upstream.stop()
    try:
        with _server(data_dir, upstream) as again:
            proxy = f"{again.url}/repositories/default/pypi/simple"
            _installed_all(_uv_install(proxy, tmp_path / "uv-restart"))
            _installed_all(_pip_install(proxy + "/", tmp_path / "pip-restart"))
    finally:
        upstream.start()


def test_a_hosted_project_shadows_the_upstream_one_in_the_group(
    upstream: LocalUpstream, tmp_path: Path
) -> None:
    from wheelyard.testing.dist_factory import make_wheel
    from wheelyard.testing.server_fixtures import RunningServer

    upstream.add_project("internal-tool", ("99.0",))
    upstream.reset_counters()
    with _server(tmp_path / "data", upstream) as proc:
        server = RunningServer(proc, proc.url)
        wheel = make_wheel(tmp_path, "internal-tool", "1.0")
        assert server.upload(wheel).status_code == 200
        python = make_venv(tmp_path / "venv", with_pip=False)
        outcome = uv_pip_install(python, f"{proc.url}/simple/", "internal-tool", "libthree")
        assert outcome.succeeded(), outcome.describe()
        assert installed_version(python, "internal-tool") == "1.0"  # never the public 99.0
        assert installed_version(python, "libthree") == "0.9"  # other names fall through
        assert upstream.page_hits("internal-tool") == 0
