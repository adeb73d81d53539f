"""Logging: one JSON object per line on stderr (or plain text for a terminal), every line of a
request carrying its request id.

The request id lives in a context variable set by the web layer for the duration of a request
(tasks started by the request inherit it), and a filter copies it onto every record, so log
calls anywhere in the code need no extra argument. Structured fields are passed as
`extra={"fields": {...}}` and become keys of the JSON object.

The formatter is a few lines of our own rather than python-json-logger: measured here, that
library's formatter cost ~17 us per line against ~5 us for this one. Access lines (one per
request in every process it crosses) skip the logging machinery altogether (`AccessLog`):
through `logging` they cost ~37 us of CPU per request, half of a cached page's whole cost.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, Literal, TextIO

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
    # httpx logs every request it sends at INFO ("HTTP Request: GET ..."): a second line per
    # upstream fetch beside the client's access line, formatted on the event loop (0.14 ms
    # of CPU per request, a quarter of the request itself, on a 2-core VM). Failures are ours
    # to log, with what they mean; httpx's own lines are kept for DEBUG.
    chosen = logging.getLevelName(level.upper())
    if isinstance(chosen, int) and chosen > logging.DEBUG:
        logging.getLogger("httpx").setLevel(max(chosen, logging.WARNING))
    else:
        logging.getLogger("httpx").setLevel(logging.NOTSET)
    # What the records would otherwise compute and we never print (the logging HOWTO's
    # "Optimization" section): caller frames, thread and process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _json_value(value: Any) -> str:
    """`json.dumps(value, default=str)`, without its set-up cost for strings and numbers."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)  # what json.dumps does with ensure_ascii
    if (kind is int or kind is float) and math.isfinite(value):
        return repr(value)
    return json.dumps(value, default=str)


class AccessLog:
    """One line per request, in the format of the other logs, written in batches: at most
    `FLUSH_BYTES` or `FLUSH_SECONDS` late (a process killed outright loses that much).

    Batching and building the JSON object directly make a line cost a few microseconds
    instead of a pass through `logging` (records, filters, handler lock, a write each).
    """

    FLUSH_BYTES = 64 * 1024
    FLUSH_SECONDS = 0.5

    def __init__(self, fmt: LogFormat, stream: TextIO | None = None) -> None:
        self._json = fmt == "json"
        self._stream = stream
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        atexit.register(self.flush)  # what is pending when the server stops

    def write(self, message: str, fields: dict[str, Any]) -> None:
        """Log one request: `message` and its `fields` (request id included by the caller)."""
        if self._json:
            line = json.dumps(
                {
                    "time": self._now(),
                    "level": "info",
                    "logger": "wheelyard.access",
                    "message": message,
                    **fields,
                },
                default=str,
            )
        else:
            rest = " ".join(f"{k}={v}" for k, v in fields.items())
            line = f"INFO wheelyard.access: {message} {rest}"
        self._append(line)

    def prepared(
        self, message: str, fields: dict[str, Any], variable: tuple[str, ...]
    ) -> Callable[..., None]:
        """A writer of the lines `write(message, fields)` would write for requests that
        differ only in the fields named in `variable` (present in `fields`, with any value,
        where they belong in the line, in that order): called with their values (in order;
        None leaves a field out), it writes the same line for a fraction of the cost, the
        rest encoded once here (a request answered again, web/replay.py)."""
        if self._json:
            start = '{"time": "'
            head = (
                '", "level": "info", "logger": "wheelyard.access", '
                f'"message": {json.dumps(message)}'
            )
            end, sep = "}", ", "
            key_text: Callable[[str], str] = lambda key: f"{sep}{json.dumps(key)}: "  # noqa: E731
            value_text: Callable[[Any], str] = _json_value
        else:
            start, head, end, sep = "", f"INFO wheelyard.access: {message}", "", " "
            key_text, value_text = (lambda key: f"{sep}{key}="), str
        # One %-template of the whole line: the time, then each variable field (written with
        # its key, or nothing when None), the constant text in between.
        template = [start.replace("%", "%%"), "%s", head.replace("%", "%%")]
        keys: list[str] = []
        text = ""
        for key, value in fields.items():
            if key in variable:
                template += [text.replace("%", "%%"), "%s"]
                keys.append(key)
                text = ""
            else:
                text += key_text(key) + value_text(value)
        if keys != list(variable):
            raise ValueError(f"variable fields {variable} must be in `fields`, in that order")
        template += [text.replace("%", "%%"), end.replace("%", "%%")]
        line = "".join(template)
        written_keys = [key_text(key) for key in keys]
        now = self._now if self._json else lambda: ""
        append = self._append

        def write_line(*values: Any) -> None:
            append(
                line
                % (
                    now(),
                    *[
                        "" if value is None else key + value_text(value)
                        for key, value in zip(written_keys, values, strict=True)
                    ],
                )
            )

        return write_line

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write what is pending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        stream = self._stream or sys.stderr
        stream.write("\n".join(self._lines) + "\n")
        stream.flush()
        self._lines.clear()
        self._size = 0

    def _now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((now - second) * 1000):03d}+00:00"
