"""Request heads are bounded in size, count and time (issue 9, "Resources are bounded").

Over real sockets against a real `wheelyard serve` process whose head deadline is shortened to
a few seconds: a client that sends its headers a byte a second is cut off within the limit,
an idle connection is closed, hundreds of idle or trickling connections do not keep a normal
client waiting, and too many or too large headers get 431.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from wheelyard.testing.server import ServerProcess

TIMEOUT = 3.0  # WHEELYARD_HEADER_TIMEOUT of the server under test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WHEELYARD_HEADER_TIMEOUT": str(TIMEOUT), "WHEELYARD_ADMIN_PASSWORD": "x" * 24}
    with ServerProcess(tmp_path_factory.mktemp("heads"), env) as proc:
        yield proc


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _head(extra: bytes = b"", path: bytes = b"/healthz") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


def test_a_client_sending_its_headers_a_byte_a_second_is_cut_off(server: ServerProcess) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.05)
        answer = b""
        for byte in b"X-Slow: " + b"a" * 60:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break  # the server hung up
            try:
                answer += sock.recv(65536)
                break
            except TimeoutError:
                time.sleep(1)
        elapsed = time.monotonic() - started
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            answer += _read_all(sock)
    assert elapsed < TIMEOUT + 2, elapsed
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_an_idle_connection_is_closed_after_the_deadline(server: ServerProcess) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        assert _read_all(sock) == b""
        assert time.monotonic() - started < TIMEOUT + 2


def test_a_kept_alive_connection_has_the_same_deadline_for_its_next_head(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        sock.sendall(_head())
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < TIMEOUT + 2


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(_head(b"".join(b"X-H%d: v\r\n" % i for i in range(200))), id="200-headers"),
        pytest.param(_head(b"X-Big: " + b"a" * 100_000 + b"\r\n"), id="100kb-header"),
        pytest.param(_head(path=b"/healthz?" + b"a" * 100_000), id="100kb-url"),
    ],
)
def test_too_many_or_too_large_headers_get_431(server: ServerProcess, head: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(head)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"Request header fields too large" in answer


def test_a_100kb_header_sent_in_small_pieces_gets_431_before_it_ends(
    server: ServerProcess,
) -> None:
    """An unfinished header is bounded too (httptools would buffer it whole)."""
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = 0
        try:
            while sent < 1_000_000:
                sock.sendall(b"a" * 4096)
                sent += 4096
                time.sleep(0.001)
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < 1_000_000


def test_requests_with_bodies_on_a_kept_alive_connection_are_not_taken_for_heads(
    server: ServerProcess,
) -> None:
    """A whole request (head and a body larger than the head limit) often arrives in one read;
    its body is not a head, however many such requests follow on one connection."""
    body = b"x" * 150_000
    request = (
        b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream"
        b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    with _connect(server) as sock:
        for _ in range(20):
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            status = answer.split(b"\r\n", 1)[0]
            assert b" 431 " not in status and b" 408 " not in status, answer[:300]
            head, _, rest = answer.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            while len(rest) < length:
                rest += sock.recv(65536)


def test_ordinary_requests_with_many_headers_are_served(server: ServerProcess) -> None:
    headers = {f"x-h{i}": "v" * 100 for i in range(60)}
    r = httpx.get(server.url + "/simple/", headers=headers, timeout=30)
    assert r.status_code == 200, r.text


async def test_300_idle_or_trickling_connections_do_not_starve_a_normal_client(
    server: ServerProcess,
) -> None:
    idle: list[asyncio.StreamWriter] = []
    trickling: list[asyncio.StreamWriter] = []
    for i in range(300):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if i % 2:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            trickling.append(writer)
        else:
            idle.append(writer)

    async def trickle() -> None:
        for _ in range(int(TIMEOUT) + 2):
            for writer in trickling:
                if not writer.is_closing():
                    writer.write(b"a")
            await asyncio.sleep(1)

    trickler = asyncio.create_task(trickle())
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(5):
                started = time.monotonic()
                r = await client.get(server.url + "/simple/")
                assert r.status_code == 200
                assert time.monotonic() - started < 1.0
                await asyncio.sleep(0.2)
    finally:
        trickler.cancel()
        for writer in idle + trickling:
            writer.close()
