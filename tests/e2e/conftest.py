"""Fixtures for the end-to-end tests: the environment for publishers fetched from PyPI.

twine 6.1, poetry and pdm are not dev dependencies; `uv tool run` installs them from PyPI at
test time into throwaway tool environments. One uv cache per session keeps that to a single
download; installs *through Wheelyard* use `--no-cache` instead, so they always reach the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelyard.testing.clients import PLAIN_OUTPUT
from wheelyard.testing.server import clean_env


@pytest.fixture(scope="session")
def tool_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uv cache shared by every `uv tool run` of the session."""
    return tmp_path_factory.mktemp("uv-tool-cache")


@pytest.fixture
def tool_env(tool_cache: Path, tmp_path: Path) -> dict[str, str]:
    """An environment for a publisher installed from PyPI by `uv tool run`.

    uv uses its default index (PyPI): `clean_env()` drops every UV_ variable and sets
    UV_NO_CONFIG. Keyring is disabled so no tool asks the machine for credentials, and HOME
    points into the test's tmp dir so no tool reads or writes the user's configuration.
    """
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(
        UV_CACHE_DIR=str(tool_cache),
        UV_PYTHON_DOWNLOADS="never",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        **PLAIN_OUTPUT,
    )
