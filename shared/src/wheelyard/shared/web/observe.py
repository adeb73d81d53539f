"""Every request observed once per process: a request id, Prometheus metrics by route name, an
access log line; and `GET /metrics`.

The request id: the gateway assigns one (or keeps a well-formed `X-Request-ID` from a trusted
proxy, `WHEELYARD_TRUST_PROXY_HEADERS`), sends it to the service it forwards to and echoes it in
the response; a service takes the one the gateway sent. It is in every log line of the request
(`wheelyard.shared.logs.REQUEST_ID`).

Routes are labelled by their name in `wheelyard.shared.routes` (`simple_project`, `download`...),
the others by the name of their FastAPI route (management API: `list_all_repositories`;
health: `healthz`), anything else `unmatched`: label values stay bounded whatever paths
clients invent.

In embedded mode the services' apps run inside the gateway's request: only the outermost
`Observe` records (the others see the request is observed already and step aside).
"""

from __future__ import annotations

import hmac
import itertools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wheelyard.shared import metrics, routes
from wheelyard.shared.logs import REQUEST_ID, AccessLog, LogFormat
from wheelyard.shared.web import replay

REQUEST_ID_HEADER = b"x-request-id"
#: Where the request's `RequestInfo` is kept in the ASGI scope (shared by shallow copies).
INFO_KEY = "wheelyard.request"
#: Request ids accepted from outside: short, and nothing that could break a log line.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
METRICS_PATH = "/metrics"


@dataclass(slots=True)
class RequestInfo:
    """What the layers of one request learn about it, for its metrics and access line."""

    id: str
    route: str | None = None
    endpoint: str | None = None  # the FastAPI route's name, when no route-table layer named it
    replica: str | None = None


def request_info(scope: Scope) -> RequestInfo | None:
    """The request's info, when an `Observe` layer has seen it."""
    return scope.get(INFO_KEY)


def set_route(scope: Scope, name: str) -> None:
    """Name the request's route for its metrics (the layer that matched it calls this)."""
    info = scope.get(INFO_KEY)
    if info is not None:
        info.route = name


class _Series:
    """The metric children of one (route, method, status): looked up once, then reused."""

    __slots__ = ("duration", "received", "requests", "sent")

    def __init__(self, service: str, route: str, method: str, status: str) -> None:
        self.requests = metrics.HTTP_REQUESTS.labels(service, route, method, status)
        self.duration = metrics.HTTP_DURATION.labels(service, route, method)
        self.received = metrics.HTTP_RECEIVED.labels(service, route)
        self.sent = metrics.HTTP_SENT.labels(service, route)


class Observe:
    """ASGI middleware: see the module docstring. `service` labels the metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        assign_ids: bool,
        trust_request_id: bool,
        access_log: bool,
        log_format: LogFormat = "json",
        metrics_token: str | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.assign_ids = assign_ids
        self.trust_request_id = trust_request_id
        self.access_log = AccessLog(log_format) if access_log else None
        self.metrics_token = metrics_token.encode() if metrics_token else None
        self._series: dict[tuple[str, str, int], _Series] = {}
        # Ids: a random prefix per process and a counter (unique without a syscall each).
        self._id_prefix = os.urandom(4).hex()
        self._id_counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or INFO_KEY in scope:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info = RequestInfo(self._request_id(scope))
        scope[INFO_KEY] = info
        context = REQUEST_ID.set(info.id)
        header = (REQUEST_ID_HEADER, info.id.encode("latin-1"))
        status = 0
        sent = 0
        received = 0

        async def observed_receive() -> Message:
            nonlocal received
            message = await receive()
            body = message.get("body")
            if body:
                received += len(body)
            return message

        announced = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, sent, announced
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                offer = scope.get(replay.SCOPE_KEY)
                if offer is not None and offer.accepted:
                    # Replays are counted here too, under the route this answer had.
                    offer.observer, offer.route, offer.path = self, info.route, scope["path"]
                announced = next(
                    (int(v) for k, v in message["headers"] if k.lower() == b"content-length"), 0
                )
            elif message["type"] == "http.response.pathsend":
                sent += announced  # the server sends the file: its announced length
            else:
                body = message.get("body")
                if body:
                    sent += len(body)
            await send(message)

        try:
            if scope["path"] == METRICS_PATH and scope["method"] in routes.READ:
                info.route = "metrics"
                await self._metrics(scope, observed_send)
            elif scope["method"] in routes.READ:  # no body to count
                await self.app(scope, receive, observed_send)
            else:
                await self.app(scope, observed_receive, observed_send)
        finally:
            self._record(scope, info, status or 500, received, sent, started)
            REQUEST_ID.reset(context)

    def _request_id(self, scope: Scope | None) -> str:
        if scope is not None and (not self.assign_ids or self.trust_request_id):
            for name, value in scope["headers"]:
                if name == REQUEST_ID_HEADER:
                    if _VALID_ID.fullmatch(value):
                        return value.decode("latin-1")
                    break
        return f"{self._id_prefix}{next(self._id_counter) & 0xFFFFFFFF:08x}"

    def replay_counter(self, *, path: str, route: str, sent: int) -> replay.Counter:
        """What counts a 200 GET of `path` (`sent` bytes of body, `route`) each time the
        server answers it again from a kept answer (web/replay.py), as `_record` counts any
        other request: the metric series once here, the access line at the first replay (most
        kept answers are never replayed, and preparing a line costs more than writing one)."""
        series = self._series_for(route, "GET", 200)
        access_log = self.access_log
        line: Callable[..., None] | None = None

        def count(client: str | None, elapsed: float) -> str:
            nonlocal line
            request_id = self._request_id(None)
            series.requests.inc()
            series.duration.observe(elapsed)
            if sent:
                series.sent.inc(sent)
            if access_log is not None:
                if line is None:
                    line = access_log.prepared(
                        f"GET {path} 200",
                        self._fields("", "GET", path, route, 200, 0.0, 0, sent, "", None),
                        ("request_id", "duration_ms", "client"),
                    )
                line(request_id, round(elapsed * 1000, 2), client)
            return request_id

        return count

    def _record(
        self, scope: Scope, info: RequestInfo, status: int, received: int, sent: int, started: float
    ) -> None:
        elapsed = time.perf_counter() - started
        method: str = scope["method"]
        if method not in _METHODS:
            method = "other"  # methods are client input: keep the label (and this dict) bounded
        route = info.route or _route_name(scope, info)
        series = self._series_for(route, method, status)
        series.requests.inc()
        series.duration.observe(elapsed)
        if received:
            series.received.inc(received)
        if sent:
            series.sent.inc(sent)
        if self.access_log is not None:
            client = scope.get("client")
            path = scope["path"]
            fields = self._fields(
                info.id,
                method,
                path,
                route,
                status,
                elapsed,
                received,
                sent,
                client[0] if client else None,
                info.replica,
            )
            self.access_log.write(f"{method} {path} {status}", fields)

    def _series_for(self, route: str, method: str, status: int) -> _Series:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.service, route, method, str(status))
        return series

    def _fields(
        self,
        request_id: str,
        method: str,
        path: str,
        route: str,
        status: int,
        elapsed: float,
        received: int,
        sent: int,
        client: str | None,
        replica: str | None,
    ) -> dict[str, Any]:
        """The fields of a request's access line, in their order."""
        fields: dict[str, Any] = {
            "request_id": request_id,
            "service": self.service,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "bytes_in": received,
            "bytes_out": sent,
        }
        if client is not None:
            fields["client"] = client
        if replica:
            fields["replica"] = replica
        return fields

    async def _metrics(self, scope: Scope, send: Send) -> None:
        if self.metrics_token is not None and not self._metrics_allowed(scope):
            await _plain(send, 401, b"metrics need the bearer token WHEELYARD_METRICS_TOKEN\n")
            return
        body, content_type = metrics.exposition()
        headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    def _metrics_allowed(self, scope: Scope) -> bool:
        assert self.metrics_token is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    token.strip(), self.metrics_token
                )
        return False


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_name(scope: Scope, info: RequestInfo) -> str:
    found = routes.match(scope["method"], scope["path"])
    if found is not None:
        return found.route.name
    return info.endpoint or "unmatched"


class RecordEndpoint:
    """Innermost ASGI middleware: after the router ran, note the FastAPI route name of
    requests no route-table layer named (the gateway's management API, health routes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            info = scope.get(INFO_KEY)
            route = scope.get("route")
            if info is not None and info.route is None and route is not None:
                info.endpoint = getattr(route, "name", None)


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})
