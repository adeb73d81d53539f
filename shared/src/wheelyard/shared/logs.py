"""Logging: one JSON object per line on stderr (or plain text for a terminal), every line of a
request carrying its request id.

The request id lives in a context variable set by the web layer for the duration of a request
(tasks started by the request inherit it), and a filter copies it onto every record, so log
calls anywhere in the code need no extra argument. Structured fields are passed as
`extra={"fields": {...}}` and become keys of the JSON object.

The formatter is a few lines of our own rather than python-json-logger: measured here, that
library's formatter cost ~17 us per line against ~5 us for this one, and every request writes
an access line in each process it crosses (docs/observability.md).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

#: The id of the request being handled (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("wheelyard_request_id", default=None)

LogFormat = Literal["json", "text"]


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id"?, ...fields, "exception"?}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger [request id] message key=value...` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        fields = getattr(record, "fields", None) or {}
        line = f"{record.levelname} {record.name}: "
        if request_id:
            line += f"[{request_id}] "
        line += record.getMessage()
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Send every logger (ours, uvicorn's, libraries') to stderr in `fmt` at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # What the records would otherwise compute and we never print (the logging HOWTO's
    # "Optimization" section): caller frames, thread and process names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
