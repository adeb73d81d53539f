"""The head-limit protocol on exact byte boundaries (tests/integration/test_request_heads.py
drives it over real sockets; here each chunk is chosen, which sockets cannot guarantee)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from wheelyard.cli import protocol as head_protocol
from wheelyard.cli.protocol import BoundedHttpToolsProtocol, HeadLimits

LIMITS = HeadLimits(max_size=4096, max_count=10, timeout=30)


class Transport:
    """Just enough of an asyncio transport to watch what the protocol writes."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def app(scope: Any, receive: Any, send: Any) -> None:
    # Answers at once without reading the body, as a 405 or a refused upload does.
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def connect(*, keep_alive: int | float = 5) -> tuple[Any, Transport]:
    config = Config(app=app, lifespan="off", log_level="error", timeout_keep_alive=keep_alive)  # type: ignore[arg-type]
    config.load()
    head_protocol.configure(LIMITS)
    protocol = BoundedHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def test_the_tail_of_a_body_is_not_counted_as_the_next_head() -> None:
    protocol, transport = connect()
    body = b"x" * 200_000
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n" + body[:10]
    )
    await asyncio.sleep(0.01)  # the app answers before the body is read
    protocol.data_received(body[10:])  # one read: far more than a head may hold
    assert not transport.closed and b" 431 " not in transport.written
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.01)
    assert transport.written.count(b"HTTP/1.1 200 ") == 2, transport.written
    protocol.connection_lost(None)


async def test_an_unfinished_head_is_bounded_across_reads() -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
    for _ in range(100):
        if transport.closed:
            break
        protocol.data_received(b"a" * 4096)
    assert transport.closed and transport.written.startswith(b"HTTP/1.1 431 ")
    protocol.connection_lost(None)


async def test_one_header_too_many_gets_431() -> None:
    protocol, transport = connect()
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(LIMITS.max_count + 1))
    protocol.data_received(b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
    assert transport.closed and transport.written.startswith(b"HTTP/1.1 431 ")
    protocol.connection_lost(None)


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    protocol, transport = connect(keep_alive=0.2)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.05)
    assert transport.written.count(b"HTTP/1.1 200 ") == 1 and not transport.closed
    await asyncio.sleep(0.3)
    assert transport.closed
    protocol.connection_lost(None)


async def test_a_connection_in_use_is_kept_alive_past_the_timeout() -> None:
    protocol, transport = connect(keep_alive=0.2)
    for _ in range(8):  # one request every 0.1 s: never idle for 0.2 s
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.1)
        assert not transport.closed
    assert transport.written.count(b"HTTP/1.1 200 ") == 8
    await asyncio.sleep(0.35)  # then idle: closed
    assert transport.closed
    protocol.connection_lost(None)


async def test_a_slow_answer_is_not_cut_by_the_keep_alive_timer() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.4)
        await app(scope, receive, send)

    protocol, transport = connect(keep_alive=0.2)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.05)
    protocol.app = slow  # the second request takes longer than the keep-alive timeout
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.5)
    assert transport.written.count(b"HTTP/1.1 200 ") == 2
    assert not transport.closed
    protocol.connection_lost(None)
