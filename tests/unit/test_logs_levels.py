"""What `configure_logging` lets through: httpx's line per request only at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from wheelyard.shared.logs import configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    httpx_level = logging.getLogger("httpx").level
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        logging.getLogger("httpx").setLevel(httpx_level)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize(
    ("level", "requests_shown", "failures_shown"),
    [("debug", True, True), ("info", False, True), ("error", False, False)],
)
def test_httpx_request_lines_only_at_debug(
    level: str, requests_shown: bool, failures_shown: bool
) -> None:
    configure_logging(level, "json")
    httpx_log = logging.getLogger("httpx")
    assert httpx_log.isEnabledFor(logging.INFO) is requests_shown  # "HTTP Request: GET ..."
    assert httpx_log.isEnabledFor(logging.WARNING) is failures_shown
    assert logging.getLogger("wheelyard").isEnabledFor(logging.INFO) is (level != "error")
