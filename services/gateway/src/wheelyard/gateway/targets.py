"""Split mode: an ASGI app that forwards a request to one replica of a service, streaming both
ways, retrying elsewhere when that is safe.

- Balancing, ejection and keep-alive pools: `wheelyard.gateway.replicas`; the wire:
  `wheelyard.gateway.http1`; why this and not an HTTP client library: docs/adr/0004.
- A replica that refuses the connection is ejected and the next one is tried (nothing of the
  request has been sent, whatever its method).
- A connection that breaks before the response began is retried once on another replica when
  no request body byte had been taken from the client: always true for GET and HEAD, and for
  an upload whose body had not started to be sent. Otherwise the client gets 502.
- With no replica left, 503 with Retry-After (when the first ejected replica is tried again).
- Headers are written straight from the ASGI scope into the request head, hop-by-hop ones
  (RFC 9110 §7.6.1) left out; Host is kept, since services build their links from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from wheelyard.gateway.http1 import Connection, ConnectionLost
from wheelyard.gateway.replicas import Replica, ReplicaSet
from wheelyard.shared import metrics
from wheelyard.shared.errors import BackendUnavailable, UpstreamError, UpstreamTimeout
from wheelyard.shared.web.observe import REQUEST_ID_HEADER, request_info
from wheelyard.shared.web.problems import error_response

log = logging.getLogger(__name__)

#: Seconds a service may stay silent (before its answer, or between two body pieces).
IDLE_TIMEOUT = 300.0
#: A request with a body reuses only connections idle for less than this: a body taken from
#: the client cannot be sent again, so it must not meet a connection the service just closed.
FRESH_FOR_BODY = 1.0

# Never forwarded: hop-by-hop headers, Expect (the gateway's server already answered it), the
# framing headers (re-derived below) and the request id (the gateway's own is sent).
_REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"content-length",
        REQUEST_ID_HEADER,
    }
)
# Never relayed: hop-by-hop headers, and what the gateway's own server or layers add (Date,
# Server and the request id would otherwise appear twice).
_RESPONSE_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
        REQUEST_ID_HEADER,
    }
)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class _ClientGone(Exception):
    """The client went away while its request body was being forwarded."""


class Forwarder:
    """Forwards HTTP requests to the replicas of one service (see the module docstring)."""

    def __init__(self, service: str, replicas: ReplicaSet) -> None:
        self.service = service
        self.replicas = replicas
        self._outcomes: dict[tuple[str, str], metrics.Counter] = {}
        ejections = metrics.GATEWAY_EJECTIONS.labels(service)
        replicas.on_eject = lambda _replica: ejections.inc()

    async def start(self) -> None:
        """Resolve the replicas (and keep them resolved)."""
        await self.replicas.start()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.replicas.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        head, framing = _request_head(scope)
        has_body = framing is not None
        tried: tuple[Replica, ...] = ()
        retried = False
        while True:
            replica = self.replicas.pick(tried)
            if replica is None and retried:
                # No other replica: the same one again, on a new connection (the broken one
                # was most likely closed by the service while idle).
                replica = self.replicas.pick()
            if replica is None:
                self._count("none", "unavailable")
                await self._unavailable(scope, receive, send)
                return
            tried += (replica,)
            replica.outstanding += 1
            try:
                try:
                    conn = await replica.acquire(
                        fresh_within=0.0
                        if retried
                        else FRESH_FOR_BODY
                        if has_body
                        else IDLE_TIMEOUT
                    )
                except (OSError, TimeoutError):
                    self.replicas.refused(replica)
                    self._count(replica.label, "refused")
                    continue
                try:
                    done = await self._exchange(
                        conn, replica, scope, receive, send, head, framing, retried
                    )
                    if done:
                        return
                except BaseException:
                    conn.close()  # whatever happened, this connection's state is unknown
                    raise
                retried = True
            finally:
                replica.outstanding -= 1

    async def _exchange(
        self,
        conn: Connection,
        replica: Replica,
        scope: Scope,
        receive: Receive,
        send: Send,
        head: bytes,
        framing: bytes | None,
        retried: bool,
    ) -> bool:
        """One attempt on `conn`: True when the client got its answer (the service's, or an
        error), False when the request may and should be sent again elsewhere."""
        has_body = framing is not None
        info = request_info(scope)
        if info is not None:
            info.replica = replica.label
        conn.begin(head_only=scope["method"] == "HEAD")
        body = _Body(sent=not has_body)
        try:
            conn.write(head)
            if framing is not None:
                await _send_body(conn, receive, framing == b"chunked", body)
            async with asyncio.timeout(IDLE_TIMEOUT):
                await conn.head()
        except ConnectionLost as exc:
            conn.close()
            # Safe to send again: nothing of it can have been acted on twice.
            again = scope["method"] in _IDEMPOTENT or (has_body and not body.taken)
            if again and not exc.answered and not retried:
                self._count(replica.label, "retried")
                return False
            self._count(replica.label, "failed")
            log.warning("%s replica %s: %s", self.service, replica.label, exc)
            await error_response(
                UpstreamError(f"The {self.service} service closed the connection.")
            )(scope, receive, send)
            return True
        except TimeoutError:
            conn.close()
            self._count(replica.label, "timeout")
            await error_response(
                UpstreamTimeout(f"The {self.service} service did not answer in time.")
            )(scope, receive, send)
            return True
        except _ClientGone:
            conn.close()
            self._count(replica.label, "client_gone")
            return True
        await self._relay(conn, replica, receive, send, body.sent)
        return True

    async def _relay(
        self,
        conn: Connection,
        replica: Replica,
        receive: Receive,
        send: Send,
        body_done: bool,
    ) -> None:
        """Send the response on `conn` to the client, then pool or close the connection
        (`body_done`: the request body was sent whole, so the connection is in a clean state
        and the client's stream has nothing more to give but its disconnect)."""
        await send(
            {
                "type": "http.response.start",
                "status": conn.status,
                "headers": _response_headers(conn.headers),
            }
        )
        if conn.complete:
            # The whole (small) body arrived with the head: one message.
            body = conn.take_body()
            await send({"type": "http.response.body", "body": body, "more_body": False})
            self._finish(conn, replica, body_done)
            return
        # A streamed body: notice a client that leaves, or we would read the rest for nobody.
        watcher = asyncio.create_task(_watch_disconnect(receive, conn)) if body_done else None
        try:
            while piece := await _next_chunk(conn):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (ConnectionLost, TimeoutError) as exc:
            conn.close()
            if watcher is not None and watcher.done():
                self._count(replica.label, "client_gone")
                return
            self._count(replica.label, "failed")
            log.warning("%s replica %s broke off a response: %s", self.service, replica.label, exc)
            # Returning without finishing makes the server drop the client connection, so a
            # cut-short body can never look complete.
            return
        finally:
            if watcher is not None:
                watcher.cancel()
        self._finish(conn, replica, body_done)

    def _finish(self, conn: Connection, replica: Replica, body_done: bool) -> None:
        replica.answered()
        if body_done:
            replica.release(conn)
        else:
            conn.close()
        self._count(replica.label, "ok")

    async def _unavailable(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            BackendUnavailable(
                f"The {self.service} service is unavailable (no replica answers); "
                "try again shortly.",
                self.service,
            )
        )
        response.headers["Retry-After"] = str(self.replicas.retry_after())
        await response(scope, receive, send)

    def _count(self, replica: str, outcome: str) -> None:
        counter = self._outcomes.get((replica, outcome))
        if counter is None:
            counter = metrics.GATEWAY_FORWARDED.labels(self.service, replica, outcome)
            self._outcomes[(replica, outcome)] = counter
        counter.inc()


def _request_head(scope: Scope) -> tuple[bytes, bytes | None]:
    """The request line and headers as bytes, and the body framing: None (no body),
    b"chunked" or b"length"."""
    parts = [scope["method"].encode("latin-1"), b" ", scope["raw_path"]]
    query = scope.get("query_string")
    if query:
        parts += (b"?", query)
    parts.append(b" HTTP/1.1\r\n")
    length: bytes | None = None
    chunked = False
    named: list[bytes] | None = None
    for name, value in scope["headers"]:
        if name in _REQUEST_DROP:
            if name == b"content-length":
                length = value.strip()
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                named = [t.strip().lower() for t in value.split(b",")]
            continue
        parts += (name, b": ", value, b"\r\n")
    framing: bytes | None = None
    if chunked:  # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length
        framing = b"chunked"
        parts.append(b"transfer-encoding: chunked\r\n")
    elif length and length != b"0":
        framing = b"length"
        parts += (b"content-length: ", length, b"\r\n")
    client = scope.get("client")
    if client:
        parts += (b"x-forwarded-for: ", client[0].encode("latin-1"), b"\r\n")
    info = request_info(scope)
    if info is not None:
        parts += (REQUEST_ID_HEADER, b": ", info.id.encode("latin-1"), b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    if named and any(t not in (b"keep-alive", b"close") for t in named):
        head = _drop_named(head, named)
    return head, framing


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The service's response headers the client may see (and none its Connection names)."""
    headers = []
    named: list[bytes] = []
    for name, value in raw:
        if name in _RESPONSE_DROP:
            if name == b"connection":
                named += [t.strip().lower() for t in value.split(b",")]
            continue
        headers.append((name, value))
    if named:
        headers = [(k, v) for k, v in headers if k not in named]
    return headers


def _drop_named(head: bytes, named: list[bytes]) -> bytes:
    """`head` without the headers the client's Connection header named (hop-by-hop too)."""
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [
        line for line in lines[1:] if line.split(b":", 1)[0].lower() not in named or not line
    ]
    return b"\r\n".join(kept)


@dataclass(slots=True)
class _Body:
    """How far a request body got: `taken` once any byte was taken from the client (it
    cannot be sent again), `sent` once all of it was written to the service."""

    taken: bool = False
    sent: bool = False


async def _send_body(conn: Connection, receive: Receive, chunked: bool, body: _Body) -> None:
    """Stream the client's body to `conn`, recording progress in `body` (also when the
    connection breaks half-way). Stops early when the service answers before reading it all
    (an early 413 or 401)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        data = message.get("body", b"")
        if data:
            body.taken = True
            conn.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            async with asyncio.timeout(IDLE_TIMEOUT):  # a service that stopped reading
                await conn.drain()
            if conn.has_head:
                body.sent = not message.get("more_body", False)
                return
        if not message.get("more_body", False):
            break
    if chunked:
        conn.write(b"0\r\n\r\n")
    body.sent = True


async def _next_chunk(conn: Connection) -> bytes:
    async with asyncio.timeout(IDLE_TIMEOUT):
        return await conn.chunk()


async def _watch_disconnect(receive: Receive, conn: Connection) -> None:
    """Close `conn` when the client disconnects (which ends the relay loop)."""
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
    conn.close()
