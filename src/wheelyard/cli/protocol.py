"""The HTTP/1.1 protocol the server speaks: uvicorn's httptools protocol, with request heads
bounded in size, count and time (docs/adr/0003-bounded-request-heads.md).

uvicorn bounds none of these: httptools buffers a header of any length, nothing counts
headers, and its only timer (keep-alive) runs between requests, so a client that sends a byte
a second, or nothing at all, holds its connection for ever. This subclass adds, per request
head (request line and headers):

- a deadline, from the moment the connection opens or the first byte of a request arrives:
  a client that has not sent its whole head by then gets 408 and is disconnected (a client
  that sent nothing is just disconnected);
- at most `max_count` headers and `max_size` bytes: 431 Request Header Fields Too Large
  (RFC 6585 §5), and the connection is closed.

Each response's head is written together with its body when the body comes in one small
message (a page, a `.metadata`): one socket write instead of two, which on loopback was
almost half of a cached page's CPU time. It also gives the application the ASGI path-send
extension (`http.response.pathsend`,
https://asgi.readthedocs.io/en/latest/extensions.html#path-send), which uvicorn lacks: a
response may name a file instead of carrying its bytes, and the file goes from the page cache
to the socket with `sendfile(2)`, never through Python (docs/adr/0007-file-bytes-by-sendfile.md).

It touches only the parser callbacks, the connection hooks of `HttpToolsProtocol` and the
`send` of each request's cycle, which uvicorn keeps stable across releases;
tests/integration/test_request_heads.py and the download tests drive it over real sockets, so
an upgrade that breaks it fails there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from wheelyard.cli import residency
from wheelyard.shared.metrics import CACHE_REQUESTS
from wheelyard.shared.web import replay
from wheelyard.shared.web.replay import ReplayCache

#: The ASGI extension and message of a response whose body is a file.
PATHSEND = "http.response.pathsend"
#: Requests answered from a kept answer (wheelyard_cache_requests{cache="replay"}).
_REPLAYED = CACHE_REQUESTS.labels("replay", "hit")


@dataclass(frozen=True)
class HeadLimits:
    """How large, how many and how slow a request head may be."""

    max_size: int
    max_count: int
    timeout: float


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a head that broke a limit."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with `limits` enforced on every request head (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = head_limits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = True  # the bytes arriving now belong to a request head
        self._head_bytes = 0  # request line and headers parsed so far
        self._head_count = 0
        self._head_received = 0  # bytes fed while the head was incomplete (see data_received)
        self._heads_completed = 0  # request heads parsed on this connection
        self._refusal: int | None = None
        self._replaying = False  # the current request was answered from a kept answer
        self._began = False  # a request head has begun and is not complete yet
        self._idle_deadline: float | None = None  # when an idle connection is closed

    # -- connection hooks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    # -- keep-alive: one timer per idle period, not one per request ---------------------------
    # uvicorn cancels its keep-alive timer on every read and arms a new one after every
    # response: two timer operations per request, a tenth of a replayed answer's cost. Here the
    # timer stays armed and only the deadline moves; when it fires early it re-arms for the
    # rest, and when the connection is busy it does nothing (the next response arms it).

    def _unset_keepalive_if_required(self) -> None:
        self._idle_deadline = None  # busy: not idle until the next response completes

    def _arm_keepalive(self) -> None:
        deadline = self.loop.time() + self.timeout_keep_alive
        self._idle_deadline = deadline
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_at(deadline, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self.timeout_keep_alive_task = None
        deadline = self._idle_deadline
        if deadline is None:
            return  # a request is being read or answered
        if deadline > self.loop.time():
            self.timeout_keep_alive_task = self.loop.call_at(deadline, self._keepalive_due)
        else:
            self.timeout_keep_alive_handler()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timer armed once per idle period (above)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_deadline = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._arm_keepalive()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # the connection is closing; nothing more is parsed
        began_in_head = self._in_head
        heads_before = self._heads_completed
        super().data_received(data)
        if (
            began_in_head
            and self._in_head
            and self._heads_completed == heads_before
            and not self.transport.is_closing()
        ):
            # httptools keeps an unfinished header in memory until its line ends, so the
            # bytes of a head still unfinished after this chunk are bounded here too (the
            # exact limit is applied per header in on_header). A chunk that began in a body,
            # or that completed a head (a whole request, body included, often arrives in one
            # read), is not counted: its head part is unknown, and the next chunks count. A
            # chunk may hold a pipelined request before the unfinished head, hence the slack.
            self._head_received += len(data)
            if self._head_received > self.limits.max_size + 65536:
                self._refuse(431)
        if self._began and self._head_timer is None and not self.transport.is_closing():
            # The first bytes of a head that is not complete yet (on a kept-alive
            # connection): its deadline runs from now. A head that arrives whole in one read,
            # the common case, never needs a timer.
            self._arm()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._began = True
        self._in_head = True
        self._head_bytes = self._head_count = self._head_received = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        self._check()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
        self._check()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._began = False
        self._in_head = False
        self._heads_completed += 1
        self._disarm()
        replays: ReplayCache | None = self.app_state.get(replay.STATE_KEY)
        key = self._replay_key() if replays is not None else None
        app = None  # the application's
        if key is not None:
            assert replays is not None  # a key is only made when there is a cache
            kept = replays.find(key)
            if kept is not None and kept.path is not None:
                # A file: its bytes go by sendfile in a request cycle of uvicorn's, as the
                # application's answer did, without the application; uvicorn queues it behind
                # an answer still under way (the last bytes of a file may have reached the
                # client, which asks again, before that cycle has ended).
                app, key = self._file_replayer(kept), None
            elif kept is not None and self._idle():
                self._replay(kept)
                return
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]  # ours to extend
        scope.setdefault("extensions", {})[PATHSEND] = {}
        if key is not None:
            assert replays is not None
            scope[replay.SCOPE_KEY] = replays.offer(key)
        # A replay just before this request (same read) armed the keep-alive timer.
        self._unset_keepalive_if_required()
        if app is None:
            super().on_headers_complete()
        else:
            application, self.app = self.app, app
            try:
                super().on_headers_complete()
            finally:
                self.app = application
        cycle = self.cycle
        if cycle is not None and cycle.scope is scope:
            # The cycle's task has not started yet: it will call this `send`.
            cycle.send = _CycleSend(self, cycle, cycle.send)  # type: ignore[method-assign]

    def on_body(self, body: bytes) -> None:
        if not self._replaying:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._replaying:
            self._replaying = False  # answered in on_headers_complete
        else:
            super().on_message_complete()
        self._in_head = True  # what follows is the next request's head

    # -- replaying kept answers (wheelyard.shared.web.replay) ---------------------------------

    def _replay_key(self) -> replay.Key | None:
        """The replay key of the request whose head was just parsed, if it may be replayed: a
        kept-alive HTTP/1.1 GET carrying only `REPLAY_HEADERS`, each at most once."""
        parser = self.parser
        if (
            parser.get_method() != b"GET"
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
        ):
            return None
        host = accept = encoding = None
        for name, value in self.headers:
            if name == b"accept":
                if accept is not None:
                    return None
                accept = value
            elif name == b"host":
                if host is not None:
                    return None
                host = value
            elif name == b"accept-encoding":
                if encoding is not None:
                    return None
                encoding = value
            elif name not in replay.REPLAY_HEADERS:
                return None
        return (self.url, host or b"", accept or b"", encoding or b"")

    def _idle(self) -> bool:
        """Whether an answer may be written now: no earlier request on this connection is
        still being answered (answers keep the requests' order) and the client reads."""
        cycle = self.cycle
        return (
            (cycle is None or cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
            and not self.transport.is_closing()
        )

    def _replay(self, kept: replay.Replayable) -> None:
        """Answer the current request with `kept`, counted like any other answer."""
        started = time.perf_counter()
        self._replaying = True
        _REPLAYED.inc()
        client = self.client
        request_id = kept.count(client[0] if client else None, time.perf_counter() - started)
        self.transport.write(
            b"".join(
                (
                    kept.head,
                    _default_headers(self.server_state.default_headers),
                    b"x-request-id: ",
                    request_id.encode("latin-1"),
                    b"\r\n\r\n",
                    kept.body,
                )
            )
        )
        self.on_response_complete()

    def _file_replayer(self, kept: replay.Replayable) -> Callable[..., Awaitable[None]]:
        """An ASGI application answering the current request with the file answer `kept`:
        its start message again, with a fresh request id, then the file by path-send."""
        assert kept.path is not None
        path = kept.path
        _REPLAYED.inc()
        client = self.client
        request_id = kept.count(client[0] if client else None, 0.0)
        headers = [*kept.headers, (b"x-request-id", request_id.encode("latin-1"))]

        async def replay_file(_scope: Any, _receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": PATHSEND, "path": path})

        return replay_file

    def keep_file_answer(self, offer: replay.ReplayOffer, start: Any, path: str, size: int) -> None:
        """Keep the answer just sent for `offer`'s request: a 200 whose start message was
        `start` and whose body was all `size` bytes of the file at `path`."""
        replays: ReplayCache | None = self.app_state.get(replay.STATE_KEY)
        if replays is None or start.get("status") != 200:
            return
        headers = tuple(
            (bytes(name), bytes(value))
            for name, value in start.get("headers", ())
            if bytes(name).lower() != b"x-request-id"  # fresh for every answer
        )
        replays.keep_file(offer, headers, path, size)

    def keep_answer(self, offer: replay.ReplayOffer, written: bytes, body: bytes) -> None:
        """Keep the answer just written (`written`: head and body) for `offer`'s request, when
        the application accepted it and it is a plain 200 with a length."""
        replays: ReplayCache | None = self.app_state.get(replay.STATE_KEY)
        if replays is None or not written.startswith(b"HTTP/1.1 200 "):
            return
        head = written[: len(written) - len(body)]
        # Without the headers written afresh for every answer (Date, Server, the request id).
        fresh = {name.lower() for name, _ in self.server_state.default_headers}
        fresh.add(b"x-request-id")
        lines = head.split(b"\r\n")[:-2]  # the head ends with an empty line
        if any(line.split(b":", 1)[0].lower() == b"transfer-encoding" for line in lines):
            return
        kept = [line for line in lines if line.split(b":", 1)[0].lower() not in fresh]
        replays.keep(offer, b"\r\n".join(kept) + b"\r\n", body)

    # -- refusing ----------------------------------------------------------------------------

    def _check(self) -> None:
        limits = self.limits
        if self._head_count > limits.max_count or self._head_bytes > limits.max_size:
            self._refusal = 431
            raise _Refused  # httptools stops parsing; uvicorn then calls send_400_response

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head the parser gave up on: 431 when a limit stopped it."""
        if self._refusal == 431:
            self._send_and_close(431, self._too_large_message())
        else:
            super().send_400_response(msg)

    def _too_large_message(self) -> str:
        limits = self.limits
        return (
            f"Request header fields too large: at most {limits.max_count} headers "
            f"and {limits.max_size} bytes of request line and headers are accepted."
        )

    def _refuse(self, status: int) -> None:
        self._refusal = status
        self.logger.warning("Refused a request head: %d", status)
        self._send_and_close(status, self._too_large_message())

    def _send_and_close(self, status: int, message: str) -> None:
        self._disarm()
        body = message.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        if not self.transport.is_closing():
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    # -- the deadline ------------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.limits.timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.flow.read_paused or (self.cycle is not None and not self.cycle.response_complete):
            # A response is still being sent on this connection (the client pipelined), or we
            # stopped reading: the wait is ours, not the client's.
            self._arm()
            return
        if self._head_received or self._head_bytes:
            self._refusal = 408
            self._send_and_close(
                408, f"The request head was not received within {self.limits.timeout:g} s."
            )
        else:
            self.transport.close()


#: A body message up to this size is written in one piece with the response head.
COALESCE_BYTES = 64 * 1024


class _Cork:
    """Stands in for a transport while uvicorn writes one message: keeps what it writes (and
    a close) until `release`."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.held: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.held.append(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing or self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _CycleSend:
    """A cycle's `send`: holds the response head back until the first body message, so a
    small body leaves in the same write; and takes `http.response.pathsend` (after a start
    message with a Content-Length), whose file is written by `sendfile(2)` straight from the
    page cache: from the event loop while the kernel says the bytes are cached (`residency`),
    else in a worker thread (the event loop never waits on the disk), waiting for the socket
    on the event loop in between. The rest is uvicorn's `send`."""

    def __init__(
        self,
        protocol: BoundedHttpToolsProtocol,
        cycle: RequestResponseCycle,
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        self.protocol = protocol
        self.cycle = cycle
        self.send = send
        self.head: bytes | None = None
        self.start: Any = None  # the response's start message

    async def _corked(self, message: Any) -> tuple[bytes, bool]:
        """uvicorn's `send(message)`, its writes kept: (the bytes, whether it closed)."""
        cycle = self.cycle
        cork = _Cork(cycle.transport)
        cycle.transport = cork  # type: ignore[assignment]
        try:
            await self.send(message)
        finally:
            cycle.transport = cork.transport
        return b"".join(cork.held), cork.closing

    def _offer(self) -> replay.ReplayOffer | None:
        """The replay offer of this cycle's request (the application may accept it)."""
        offer: replay.ReplayOffer | None = self.cycle.scope.get(replay.SCOPE_KEY)  # type: ignore[assignment]
        return offer

    def _release(self, data: bytes, closing: bool) -> None:
        transport = self.cycle.transport
        if data and not transport.is_closing():
            transport.write(data)
        if closing:
            transport.close()

    async def __call__(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self.head is None:
            self.start = message
            head, closing = await self._corked(message)
            if closing:
                self._release(head, closing)
            else:
                self.head = head
            return
        head, self.head = self.head or b"", None
        if kind == "http.response.body" and len(message.get("body", b"")) <= COALESCE_BYTES:
            body, closing = await self._corked(message)
            self._release(head + body, closing)
            offer = self._offer()
            if offer is not None and head and not closing and not message.get("more_body"):
                self.protocol.keep_answer(offer, head + body, body)
            return
        self._release(head, False)
        if kind != PATHSEND:
            await self.send(message)
            return
        cycle = self.cycle
        if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding:
            raise RuntimeError("http.response.pathsend needs a started response with a length.")
        if not cycle.disconnected and cycle.scope["method"] != "HEAD":
            length = cycle.expected_content_length
            cycle.expected_content_length -= await self._sendfile(message["path"])
            offer = self._offer()
            if offer is not None and cycle.expected_content_length == 0 and self.start is not None:
                self.protocol.keep_file_answer(offer, self.start, message["path"], length)
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _sendfile(self, path: str) -> int:
        """Write the file at `path` (as many bytes as the response still owes) to the socket;
        return how many were written (fewer when the client went away or the file is short,
        and uvicorn then ends the connection)."""
        loop = asyncio.get_running_loop()
        cycle, transport = self.cycle, self.protocol.transport
        sock = transport.get_extra_info("socket")
        if sock is None or cycle.disconnected:
            return 0
        # A descriptor of our own on the socket: the transport keeps its own registered with
        # the event loop, and one fd may not have two watchers.
        out = os.dup(sock.fileno())
        owed, sent = cycle.expected_content_length, 0
        source = -1
        try:
            while transport.get_write_buffer_size() and not cycle.disconnected:
                # The head is still buffered in the transport: it must go first.
                await _writable(loop, out)
                await asyncio.sleep(0)
            if owed and not cycle.disconnected:
                # Its path was just looked up by the request (or served moments ago by a
                # replayed answer): opening it does not wait for the disk.
                source = os.open(path, os.O_RDONLY)
            while sent < owed and not cycle.disconnected:
                step = min(owed - sent, LOOP_SEND_BYTES)
                if residency.cached(source, sent, step):
                    # Every page of the next step is in the page cache: sendfile only copies,
                    # never waits for the disk, so it runs here, as nginx's does, and a file
                    # that fits the socket's buffer needs no thread (two thread wake-ups
                    # fewer per file: docs/adr/0007-file-bytes-by-sendfile.md).
                    asked = step
                    burst = _send_burst(out, source, sent, asked, wait=0.0)
                else:
                    asked = owed - sent
                    burst = await loop.run_in_executor(
                        _senders(), _send_burst, out, source, sent, asked
                    )
                sent += burst.sent
                if burst.blocked:
                    await _writable(loop, out)  # a slow reader: wait on the event loop
                elif burst.sent < asked:
                    break  # the client went away, or the file is short
        finally:
            os.close(out)
            if source >= 0:
                os.close(source)
        return sent


#: Longest a worker thread waits for a slow reader's socket before handing the wait to the
#: event loop (so slow readers cannot hold the sender threads).
BURST_WAIT = 0.05
#: Threads that run sendfile bursts (each busy at most a burst at a time).
SENDER_THREADS = 32
#: The most of a file one check of the page cache covers (and one `sendfile` on the event loop
#: may send): what the socket takes at once is usually less.
LOOP_SEND_BYTES = 4 * 1024 * 1024


class _Burst(NamedTuple):
    """What one `_send_burst` did: the bytes sent, and whether it stopped because the socket
    stayed full (else: all sent, the file ended, or the client went away)."""

    sent: int
    blocked: bool


def _send_burst(out: int, source: int, offset: int, count: int, wait: float = BURST_WAIT) -> _Burst:
    """`sendfile` from `source` at `offset` to `out` until `count` bytes are sent. In a worker
    thread it waits for the socket itself, at most `wait` seconds at a time (one hop per file
    for a client that keeps up, instead of one per socket buffer); on the event loop `wait`
    is 0: it stops as soon as the socket is full."""
    sent = 0
    poller = select.poll()
    poller.register(out, select.POLLOUT)
    while sent < count:
        try:
            n = os.sendfile(out, source, offset + sent, count - sent)
        except BlockingIOError:
            if not poller.poll(wait * 1000):
                return _Burst(sent, blocked=True)
            continue
        except OSError:
            return _Burst(sent, blocked=False)  # the client went away
        if n == 0:
            return _Burst(sent, blocked=False)  # the file is shorter than announced
        sent += n
    return _Burst(sent, blocked=False)


_sender_pool: ThreadPoolExecutor | None = None


def _senders() -> ThreadPoolExecutor:
    """The threads that run sendfile bursts (made on first use)."""
    global _sender_pool
    if _sender_pool is None:
        _sender_pool = ThreadPoolExecutor(SENDER_THREADS, thread_name_prefix="wheelyard-sendfile")
    return _sender_pool


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        # Bounded: a vanished client is noticed by the next sendfile call (EPIPE) or by the
        # transport (connection_lost), so a wait never outlives the connection for long.
        # asyncio.timeout: wait_for can swallow a cancellation on 3.11 (python/cpython#86296).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await ready
    finally:
        loop.remove_writer(fd)


_defaults: tuple[object, bytes] = (None, b"")


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's headers of every answer (Date, Server) as written: the server replaces
    the list when the date changes, so it is encoded once per list."""
    global _defaults
    if _defaults[0] is not headers:
        _defaults = (headers, b"".join(b"%s: %s\r\n" % pair for pair in headers))
    return _defaults[1]


_limits: HeadLimits | None = None


def configure(limits: HeadLimits) -> None:
    """Use `limits` for the connections of this process."""
    global _limits
    _limits = limits


def head_limits() -> HeadLimits:
    """The limits of this process: those given to `configure`, else read from the settings
    once (a worker process uvicorn spawned imports this class by name and configures nothing)."""
    global _limits
    if _limits is None:
        from wheelyard.shared.config import load_settings

        settings = load_settings()
        _limits = HeadLimits(
            max_size=settings.max_header_size,
            max_count=settings.max_header_count,
            timeout=settings.header_timeout,
        )
    return _limits
