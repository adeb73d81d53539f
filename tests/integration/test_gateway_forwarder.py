"""The gateway's forwarder against real HTTP servers standing in for service replicas: balancing,
ejection and re-admission, retries (and when there are none), 503 when no replica is left,
header handling and body framing. The forwarder runs in-process; the replicas are uvicorn
servers in a thread (or a raw socket server that misbehaves)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY

from wheelyard.gateway import replicas as replicas_module
from wheelyard.gateway.replicas import Endpoint, ReplicaSet, parse_endpoints
from wheelyard.gateway.targets import Forwarder
from wheelyard.shared.errors import ConfigurationError
from wheelyard.testing.tcp_proxy import free_port


class Backend:
    """A replica stand-in on 127.0.0.1: answers `<name>` with the request's headers and body
    as JSON, after `delay` seconds; can be stopped and started again on the same port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.hits = 0
        self.delay = 0.0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.hits += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.delay:
            await asyncio.sleep(self.delay)
        payload = json.dumps(
            {
                "name": self.name,
                "path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "body": len(body),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"keep-alive, x-private"),
                    (b"x-private", b"hop"),
                    (b"x-kept", b"yes"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def start(self) -> Backend:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "backend did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None


class Dropper:
    """Accepts connections, reads `read` bytes of the request, then closes without answering
    (a replica that dies mid-request)."""

    def __init__(self, read: int) -> None:
        self.read = read
        self.port = free_port()
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                got = 0
                while got < self.read:
                    data = conn.recv(65536)
                    if not data:
                        break
                    got += len(data)

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    a, b = Backend("a").start(), Backend("b").start()
    yield a, b
    a.stop()
    b.stop()


def _forwarder(*ports: int) -> Forwarder:
    service = f"test-{ports[0]}"
    return Forwarder(service, ReplicaSet(service, [Endpoint("127.0.0.1", p) for p in ports]))


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    made: list[tuple[httpx.AsyncClient, Forwarder]] = []

    def make(forwarder: Forwarder) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=forwarder), base_url="http://registry.test"
        )
        made.append((client, forwarder))
        return client

    yield make
    for client, forwarder in made:
        await client.aclose()
        await forwarder.aclose()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_spread_over_the_replicas(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    a, b = backends
    client = client_for(_forwarder(a.port, b.port))
    names = [(await client.get("/x")).json()["name"] for _ in range(20)]
    assert names.count("a") == names.count("b") == 10


async def test_a_busy_replica_gets_fewer_requests(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    a, b = backends
    a.delay = 1.5
    client = client_for(_forwarder(a.port, b.port))
    # Two at once: one lands on each. Then, while a's is in flight, everything goes to b.
    slow = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
    await asyncio.sleep(0.3)
    names = [(await client.get("/fast")).json()["name"] for _ in range(10)]
    await asyncio.gather(*slow)
    assert names == ["b"] * 10
    assert a.hits == 1


async def test_a_refusing_replica_is_ejected_then_readmitted(
    backends: tuple[Backend, Backend], client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replicas_module, "EJECT_FIRST", 0.5)
    a, b = backends
    forwarder = _forwarder(a.port, b.port)
    client = client_for(forwarder)
    ejected = _sample("wheelyard_gateway_replica_ejections_total", service=forwarder.service)
    a.stop()
    responses = [await client.get("/x") for _ in range(10)]
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["name"] for r in responses} == {"b"}
    assert _sample("wheelyard_gateway_replica_ejections_total", service=forwarder.service) == (
        ejected + 1
    )
    a.start()
    await asyncio.sleep(0.6)
    names = {(await client.get("/x")).json()["name"] for _ in range(6)}
    assert names == {"a", "b"}


async def test_no_replica_left_is_503_with_retry_after(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    a, b = backends
    client = client_for(_forwarder(a.port, b.port))
    a.stop()
    b.stop()
    response = await client.get("/x")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"] == "application/problem+json"
    assert "no replica" in response.json()["detail"]


async def test_a_read_is_retried_on_another_replica_when_one_drops_it(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    _a, b = backends
    dropper = Dropper(read=1)
    try:
        forwarder = _forwarder(dropper.port, b.port)
        client = client_for(forwarder)
        responses = [await client.get("/x") for _ in range(6)]
        assert [r.status_code for r in responses] == [200] * 6
        assert dropper.connections >= 1
        retried = _sample(
            "wheelyard_gateway_forwarded_total",
            service=forwarder.service,
            replica=f"127.0.0.1:{dropper.port}",
            outcome="retried",
        )
        assert retried == dropper.connections
    finally:
        dropper.close()


async def test_an_upload_whose_body_was_sent_is_not_retried(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    _a, b = backends
    dropper = Dropper(read=200_000)
    try:
        client = client_for(_forwarder(dropper.port))
        forwarder_b = _forwarder(dropper.port, b.port)
        both = client_for(forwarder_b)
        body = b"x" * 2_000_000
        alone = await client.put("/upload", content=body)
        assert alone.status_code == 502
        # With a healthy replica beside it: whichever gets the upload first keeps it.
        outcomes = [(await both.put("/upload", content=body)).status_code for _ in range(4)]
        assert b.hits == outcomes.count(200)
        assert set(outcomes) <= {200, 502} and 502 in outcomes
    finally:
        dropper.close()


async def test_headers_and_bodies_cross_as_they_should(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    a, _b = backends
    client = client_for(_forwarder(a.port))
    response = await client.post(
        "/some/path%2Bplus?q=1&r=%20",
        headers={
            "Host": "registry.example",
            "Connection": "keep-alive, x-secret",
            "X-Secret": "hop",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Upgrade": "h2c",
            "Proxy-Authorization": "Basic eA==",
            "X-Request-ID": "forged",
            "X-Kept": "yes",
        },
        content=b"0123456789",
    )
    assert response.status_code == 200
    seen = response.json()
    names = [k for k, _v in seen["headers"]]
    assert seen["path"] == "/some/path%2Bplus" and seen["query"] == "q=1&r=%20"
    assert dict(seen["headers"])["host"] == "registry.example"
    assert dict(seen["headers"])["x-kept"] == "yes"
    assert dict(seen["headers"])["x-forwarded-for"] == "127.0.0.1"
    for dropped in ("x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert dropped not in names
    assert "forged" not in dict(seen["headers"]).values()
    assert seen["body"] == 10
    # Response: hop-by-hop headers (and those Connection names) do not reach the client.
    assert response.headers["x-kept"] == "yes"
    assert "x-private" not in response.headers

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 100_000

    chunked = await client.put("/stream", content=chunks())
    assert chunked.json()["body"] == 500_000


def test_service_urls_are_checked() -> None:
    assert parse_endpoints("http://a:1, http://10.0.0.2:8001", "WHEELYARD_INDEX_URL") == [
        Endpoint("a", 1),
        Endpoint("10.0.0.2", 8001),
    ]
    for bad in ("https://a:1", "a:1", "http://a:1/path", ",", "http://a:x"):
        with pytest.raises(ConfigurationError, match="WHEELYARD_INDEX_URL"):
            parse_endpoints(bad, "WHEELYARD_INDEX_URL")


async def test_a_name_resolving_to_several_addresses_is_several_replicas() -> None:
    # "localhost" resolves through the system resolver; every address it gives is a replica.
    replica_set = ReplicaSet("dns", [Endpoint("localhost", 8000)])
    await replica_set.resolve()
    expected = {
        info[4][0] for info in socket.getaddrinfo("localhost", 8000, type=socket.SOCK_STREAM)
    }
    assert {r.host for r in replica_set.replicas} == expected
    await replica_set.aclose()


async def test_head_answers_leave_the_connection_reusable(
    backends: tuple[Backend, Backend], client_for: Any
) -> None:
    a, _b = backends
    forwarder = _forwarder(a.port)
    client = client_for(forwarder)
    get = await client.get("/x")
    (replica,) = forwarder.replicas.replicas
    (first,) = replica._idle
    head = await client.head("/x")
    assert head.status_code == 200 and head.content == b""
    assert head.headers.get("content-type") == get.headers.get("content-type")
    again = await client.get("/x")
    assert again.json()["name"] == "a"
    # The same kept-alive connection carried all three exchanges.
    assert replica._idle == [first]


class OneShot:
    """Answers the first request on each connection, then closes the connection when the next
    one arrives, unanswered: a keep-alive connection the server gave up just as it was used."""

    RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            conn.sendall(self.RESPONSE)
            conn.recv(65536)  # the next request: dropped, unanswered

    def close(self) -> None:
        self._sock.close()


async def test_a_lone_replica_is_tried_again_on_a_new_connection(client_for: Any) -> None:
    server = OneShot()
    try:
        client = client_for(_forwarder(server.port))
        answers = [await client.get("/x") for _ in range(4)]
        assert [r.status_code for r in answers] == [200] * 4
        assert [r.text for r in answers] == ["ok"] * 4
        # Requests 2 to 4 each met a kept-alive connection the server was giving up, and were
        # sent again on a new one: four connections, no error for the client.
        assert server.connections == 4
    finally:
        server.close()
