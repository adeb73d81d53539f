"""Test configuration: folder markers, backend fixtures, and a per-backend summary.

Backend fixtures come from the `wheelyard.testing` plugin modules. The summary at the end
of the run shows how many contract tests passed on each backend, so a CI log proves that
SQLite, Postgres, filesystem, S3, memory and Redis were all exercised.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest_plugins = [
    "wheelyard.testing.blob_fixtures",
    "wheelyard.testing.cache_fixtures",
    "wheelyard.testing.db_fixtures",
    "wheelyard.testing.server_fixtures",
    "wheelyard.testing.upstream",
    "wheelyard.testing.proxy_env",
    "wheelyard.testing.browser",
    "wheelyard.testing.ui_env",
]

FOLDER_MARKERS = ("unit", "contract", "integration", "e2e", "deploy", "browser")
BACKENDS = ("sqlite", "postgres", "filesystem", "s3", "memory", "redis")
_passed_by_backend: Counter[str] = Counter()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        try:
            folder = Path(str(item.fspath)).relative_to(here).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed or "/contract/" not in report.nodeid:
        return
    params = report.nodeid.rpartition("[")[2].rstrip("]").split("-")
    for backend in BACKENDS:
        if backend in params:
            _passed_by_backend[backend] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _passed_by_backend:
        return
    terminalreporter.section("contract suites by backend")
    for backend in BACKENDS:
        terminalreporter.write_line(f"{backend:>10}: {_passed_by_backend[backend]} passed")
