"""Which upstream requests go through the forward proxy (NO_PROXY, as curl reads it), and how
a connection failure is told (issue 9, "Proxy in the real world")."""

from __future__ import annotations

import contextlib
import ssl

import httpx
import pytest

from wheelyard.proxy_cache.netroutes import bypasses_proxy, describe_failure
from wheelyard.shared.config import load_settings


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("pypi.org", 443, None, False),
        ("pypi.org", 443, "", False),
        ("pypi.org", 443, "*", True),
        ("pypi.org", 443, "pypi.org", True),
        ("files.pythonhosted.org", 443, ".pythonhosted.org", True),
        ("files.pythonhosted.org", 443, "pythonhosted.org", True),
        ("evilpythonhosted.org", 443, "pythonhosted.org", False),
        ("mirror.corp", 8443, "mirror.corp:8443", True),
        ("mirror.corp", 443, "mirror.corp:8443", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("10.1.2.3", 443, "192.168.0.0/16, 127.0.0.1", False),
        ("127.0.0.1", 80, "localhost,127.0.0.1", True),
        ("::1", 443, "::1", True),
        ("PyPI.org.", 443, "pypi.ORG", True),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str | None, direct: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is direct


def test_failures_name_their_cause() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate in certificate chain"
    wrapped = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    wrapped.__cause__ = verify
    assert describe_failure(wrapped) == (
        "certificate verify failed: self-signed certificate in certificate chain"
    )
    refused = httpx.ConnectError("boom")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert describe_failure(refused) == "connection refused"
    assert describe_failure(httpx.ProxyError("407 Proxy Authentication Required")) == (
        "the proxy refused the connection: 407 Proxy Authentication Required"
    )


def test_proxy_settings_come_from_the_standard_variables(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "localhost,.corp")
    settings = load_settings()
    assert settings.https_proxy == "http://proxy.corp:3128"
    assert settings.no_proxy == "localhost,.corp"
    assert settings.http_proxy is None


async def test_the_ssrf_guard_applies_through_a_proxy_too() -> None:
    from wheelyard.proxy_cache.addresses import AddressGuard, UpstreamRefused
    from wheelyard.shared.errors import UpstreamError

    guard = AddressGuard()
    # Behind an egress proxy only the proxy resolves public names: let them through...
    await guard.check("https://pypi.invalid/simple/", allow_internal=False, via_proxy=True)
    with pytest.raises(UpstreamError):
        await guard.check("https://pypi.invalid/simple/", allow_internal=False)
    # ... but metadata and loopback targets are refused whatever the route.
    for url in ("http://169.254.169.254/latest/", "http://127.0.0.1:8000/", "http://[::1]/"):
        with pytest.raises(UpstreamRefused):
            await guard.check(url, allow_internal=False, via_proxy=True)


async def test_upstream_connections_are_kept_alive_across_the_pools() -> None:
    """Direct connections are split over `POOLS` pools (httpcore walks a pool's connections on
    every request): a burst opens a connection per request in flight, never one per request,
    and the next burst reuses them all."""
    import asyncio

    from wheelyard.proxy_cache.netroutes import POOLS, NetRoutes

    opened = 0
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.01)  # long enough for the burst to overlap
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client closed the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    routes = NetRoutes()
    client = routes.client(None)
    try:

        async def burst(size: int) -> None:
            answers = await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{port}/{i}") for i in range(size))
            )
            assert all(a.status_code == 200 and a.content == b"ok" for a in answers)

        await burst(40)
        first = opened
        assert POOLS <= first <= 40
        await burst(40)
        for _ in range(20):  # one at a time: each pool reuses what it keeps
            await burst(1)
        assert opened == first
    finally:
        await routes.aclose()
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)  # each saw its client close
