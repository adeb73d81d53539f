"""One HTTP/1.1 client connection to a service, for the forwarder: an asyncio Protocol whose
responses are parsed by httptools (llhttp, the parser uvicorn itself uses).

Why not a general-purpose client: the forwarder sits on every request, and measured here httpx
cost ~2.6 ms of CPU per forwarded request and aiohttp about a tenth of that, still more than
the service's own work (docs/adr/0004-gateway-forwarder.md). A forwarder needs far less than a
client: no cookies, redirects, decoding, URL parsing or header objects, only bytes in and out.

Back-pressure holds both ways, so a 1 GiB body never sits in memory:
- request bodies: `write` is followed by `drain()`, which waits while the transport's buffer is
  above its high-water mark (asyncio calls `pause_writing`/`resume_writing`);
- response bodies: the parser appends to a small queue; past `HIGH_WATER` bytes the socket is no
  longer read (`pause_reading`) until the consumer has taken it below `LOW_WATER`.

A connection carries one exchange at a time; the pool (`wheelyard.gateway.replicas`) keeps
idle ones alive for the next request.
"""

from __future__ import annotations

import asyncio
import collections
import time

import httptools

#: Response bytes buffered before the socket is paused, and the level that resumes it.
HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024


class ConnectionLost(Exception):
    """The connection closed (or broke) before the response was complete.

    `answered` tells whether any part of the response (its status line) had arrived: a request
    that was never answered may be retried elsewhere when that is safe; an answered one may not.
    """

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class Connection(asyncio.Protocol):
    """A client connection: write a request with `write`/`drain`, then read the response with
    `head()` and `chunk()`. Not safe for two exchanges at once (the pool guarantees that)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._head_only = False
        self._begin_state()

    def _begin_state(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.has_head = False
        self.complete = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._read_paused = False
        self._error: ConnectionLost | None = None

    # -- the exchange ------------------------------------------------------------------------

    def begin(self, *, head_only: bool) -> None:
        """Prepare for a new exchange; `head_only` for HEAD requests (no body will follow,
        whatever Content-Length says: the parser cannot know, so it is replaced after)."""
        self._begin_state()
        self._head_only = head_only

    def write(self, data: bytes) -> None:
        """Queue `data` for sending (call `drain()` after large writes)."""
        if self.closed or self.transport is None:
            raise ConnectionLost("the service closed the connection", answered=self.has_head)
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the send buffer is above its high-water mark (or until the response
        begins: a service may answer before it has read the whole body)."""
        if self._write_paused and not self.closed and not self.has_head:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
        if self.closed and not self.has_head:
            raise ConnectionLost("the service closed the connection", answered=self.has_head)

    async def head(self) -> None:
        """Wait for the status line and headers (`status`, `headers`, `keep_alive`)."""
        while not self.has_head:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def chunk(self) -> bytes:
        """The next piece of the response body; b"" once the body is complete."""
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._read_paused and self._buffered <= LOW_WATER and self.transport:
                    self._read_paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()

    def take_body(self) -> bytes:
        """The whole body of a complete response, at once."""
        assert self.complete
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    def reusable(self) -> bool:
        """True when the exchange finished cleanly and the service keeps the connection open."""
        return self.complete and self.keep_alive and not self.closed and not self._chunks

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self.transport = transport  # type: ignore[assignment]
        self.idle_since = time.monotonic()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"the service sent a malformed response: {exc}")
            self.close()

    def eof_received(self) -> bool:
        self._fail("the service closed the connection")
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(
            "the service closed the connection" if exc is None else f"connection lost: {exc}"
        )
        self._wake_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, message: str) -> None:
        self.closed = True
        if not self.complete and self._error is None:
            self._error = ConnectionLost(message, answered=self.has_head)
        self._wake()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # An interim response (we never send Expect, but a service may): the real one follows.
            self.headers = []
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.has_head = True
        self._wake_drain()
        if self._head_only:
            # The answer to a HEAD has no body; a new parser reads the next response. The
            # parser's keep-alive verdict assumed a body read to the end of the connection
            # when neither Content-Length nor chunked framing was sent (uvicorn's HEAD
            # answers); without a body, only HTTP/1.1 and `Connection: close` decide.
            self.complete = True
            self.keep_alive = self._parser.get_http_version() == "1.1" and not any(
                name == b"connection" and b"close" in value.lower() for name, value in self.headers
            )
            self._parser = httptools.HttpResponseParser(self)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.has_head:
            self.complete = True
            self.idle_since = time.monotonic()
            self._wake()
