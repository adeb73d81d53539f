"""The one place that maps domain errors to HTTP responses.

Error bodies are RFC 9457 problem details: `{"type", "title", "status", "detail"}` with the
person-readable message in `detail`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from wheelyard.shared.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    Gone,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthenticated,
    UpstreamError,
    UpstreamTimeout,
    WheelyardError,
)

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[WheelyardError], int]] = [
    (TooLarge, 413),
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (Gone, 410),
    (RateLimited, 429),
    (BackendUnavailable, 503),
    (UpstreamTimeout, 504),
    (IntegrityFailure, 502),
    (UpstreamError, 502),
]

REALM = "wheelyard"


def status_for(exc: WheelyardError) -> int:
    """The HTTP status of a domain error."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(exc: WheelyardError) -> Response:
    """An RFC 9457 problem+json response (uv prints its `detail` for failed uploads), with
    the headers its status needs."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 503:
        headers["Retry-After"] = "5"
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": exc.message,
        **getattr(exc, "extensions", {}),
    }
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


#: Exceptions that mean "the database cannot be reached": an outage, answered with 503.
DATABASE_DOWN = (OperationalError, PoolTimeout, DBAPIError, ConnectionError)


def response_for_exception(exc: Exception) -> Response | None:
    """The response for a domain error or a database outage; None for anything else (a bug,
    which the server turns into a 500 and logs)."""
    if isinstance(exc, WheelyardError):
        return error_response(exc)
    if isinstance(exc, DATABASE_DOWN):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return error_response(BackendUnavailable("The database is unavailable.", "database"))
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain-error and backend-outage handlers on `app`."""

    async def on_error(_request: Request, exc: Exception) -> Response:
        response = response_for_exception(exc)
        assert response is not None
        return response

    app.add_exception_handler(WheelyardError, on_error)
    # An unreachable database is an outage, not a bug: 503 + Retry-After, no traceback.
    # (ConnectionError: asyncpg raises it unwrapped when the server refuses connections.)
    for cls in DATABASE_DOWN:
        app.add_exception_handler(cls, on_error)
