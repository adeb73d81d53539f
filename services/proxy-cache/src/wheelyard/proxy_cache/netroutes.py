"""How upstream connections are made: which certificates are trusted, which proxy is used,
and how a failure is told.

- Trust: the operating system's trust store through `truststore` (as pip does), plus the PEM
  certificates of `WHEELYARD_PYPI_PROXY_CA_BUNDLE` for every upstream, plus an upstream's own
  `ca_bundle`. Companies that inspect TLS re-sign traffic with their own CA; without this a
  proxy there could never reach pypi.org.
- Proxies: `HTTPS_PROXY` for https targets, `HTTP_PROXY` for http targets, unless `NO_PROXY`
  names the host (curl's rules: `*`, a host or domain suffix with or without a leading dot, an
  IP address or CIDR range, optionally with `:port`). An https target is tunnelled (CONNECT),
  so the proxy sees only the host name. The SSRF guard checks the target itself, whatever the
  route (a proxy usually lives on a private address; that is the operator's choice, not an
  upstream's).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import ssl
from dataclasses import dataclass

import httpcore
import httpx
import truststore

from wheelyard.shared.config import read_pem

USER_AGENT = "wheelyard-proxy/0.1"
#: Direct upstream connections are split over this many pools, used in turn. httpcore's pool
#: looks at every one of its connections whenever a request starts or a response ends: it
#: polls each idle socket (through anyio's attribute lookup) and, per idle connection, counts
#: all connections again (quadratic in the pool's size: encode/httpcore#1035, still open in
#: 1.0.9). Through the 50 parallel downloads of a cold uv install that walk was 13% of the
#: event loop's time (py-spy); a pool of a quarter the size polls a quarter as many sockets
#: and counts a sixteenth as often.
POOLS = 4
# As many idle connections kept as may be open: an installer downloads in parallel (uv: 50 at
# a time), and with fewer kept alive each burst would close most of them and connect again.
_LIMITS = httpx.Limits(max_connections=100 // POOLS, max_keepalive_connections=100 // POOLS)
#: The most an upstream response body is read at a time. httpcore reads 64 KiB per call
#: (`AsyncHTTP11Connection.READ_NUM_BYTES`), and each call is a trip through h11, anyio and the
#: event loop; uvloop receives up to 256 KiB per `recv`, so a read this large takes whatever
#: arrived in one trip. Cold wheels through the proxy, measured (bench/cold_categories.py):
#: 2.9 / 2.7 s of the event loop's CPU for the 102 wheels with 64 KiB, 2.3 / 2.2 s with this.
UPSTREAM_READ_BYTES = 256 * 1024
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = UPSTREAM_READ_BYTES

#: Clients kept for distinct upstream CA bundles; past it the oldest is closed.
MAX_CLIENTS = 32


@dataclass(frozen=True)
class ProxySettings:
    """Forward proxies for upstream requests (None: connect directly)."""

    https_proxy: str | None = None
    http_proxy: str | None = None
    no_proxy: str | None = None


def bypasses_proxy(host: str, port: int | None, no_proxy: str | None) -> bool:
    """True when `NO_PROXY` (`no_proxy`) says `host[:port]` is reached directly."""
    if not no_proxy:
        return False
    host = host.strip("[]").lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):
            entry_host, _, port_text = entry.partition(":")
            entry_port = int(port_text) if port_text.isdigit() else None
        entry_host = entry_host.strip("[]")
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        suffix = entry_host.lstrip(".").lstrip("*").lstrip(".")
        if host == suffix or host.endswith("." + suffix):
            return True
    return False


class _Routed(httpx.AsyncBaseTransport):
    """Sends each request directly or through the proxy for its scheme (see the module)."""

    def __init__(self, context: ssl.SSLContext, proxies: ProxySettings) -> None:
        self.proxies = proxies
        self.pools = [
            httpx.AsyncHTTPTransport(verify=context, limits=_LIMITS) for _ in range(POOLS)
        ]
        self._turns = itertools.cycle(self.pools)
        self.via: dict[str, httpx.AsyncHTTPTransport] = {}
        for scheme, url in (("https", proxies.https_proxy), ("http", proxies.http_proxy)):
            if url:
                self.via[scheme] = httpx.AsyncHTTPTransport(
                    verify=context, limits=_LIMITS, proxy=httpx.Proxy(url)
                )

    def _proxy_for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport | None:
        """The forward proxy's transport for `url`, or None when it is reached directly."""
        proxied = self.via.get(url.scheme)
        port = url.port or (443 if url.scheme == "https" else 80)
        if proxied is None or bypasses_proxy(url.host, port, self.proxies.no_proxy):
            return None
        return proxied

    def pick(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        """The transport for `url`: its proxy's, or the next direct pool."""
        return self._proxy_for(url) or next(self._turns)

    def proxied(self, url: httpx.URL) -> bool:
        """True when `url` is reached through a forward proxy."""
        return self._proxy_for(url) is not None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.pick(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in [*self.pools, *self.via.values()]:
            await transport.aclose()


def trust_context(*pem_bundles: str | None) -> ssl.SSLContext:
    """The system trust store plus every given PEM bundle (text)."""
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for pem in pem_bundles:
        if pem:
            context.load_verify_locations(cadata=pem)
    return context


class NetRoutes:
    """One HTTP client per distinct upstream CA bundle (connections pooled per client), each
    trusting the system store, the global bundle and its own, and routed through the proxies.
    """

    def __init__(
        self, *, ca_bundle: str | None = None, proxies: ProxySettings | None = None
    ) -> None:
        self.ca_bundle = read_pem(ca_bundle) if ca_bundle else None
        self.proxies = proxies or ProxySettings()
        self._clients: dict[str | None, tuple[httpx.AsyncClient, _Routed]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _entry(self, upstream_bundle: str | None) -> tuple[httpx.AsyncClient, _Routed]:
        key = hashlib.sha256(upstream_bundle.encode()).hexdigest() if upstream_bundle else None
        found = self._clients.get(key)
        if found is None:
            transport = _Routed(trust_context(self.ca_bundle, upstream_bundle), self.proxies)
            client = httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
            if len(self._clients) >= MAX_CLIENTS:
                # Bundles changed through the management API leave clients nobody uses.
                oldest = next(k for k in self._clients if k is not None)
                stale = self._clients.pop(oldest)[0]
                task = asyncio.get_running_loop().create_task(stale.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            found = self._clients[key] = (client, transport)
        return found

    def client(self, upstream_bundle: str | None) -> httpx.AsyncClient:
        """The client for an upstream with `upstream_bundle` (PEM text, or None)."""
        return self._entry(upstream_bundle)[0]

    def proxied(self, url: str, upstream_bundle: str | None = None) -> bool:
        """True when `url` is reached through a forward proxy (HTTPS_PROXY/HTTP_PROXY)."""
        return self._entry(upstream_bundle)[1].proxied(httpx.URL(url))

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client, _transport in self._clients.values():
            await client.aclose()
        self._clients.clear()


def describe_failure(exc: BaseException) -> str:
    """What went wrong, in words a person can act on: the TLS verification error, the refused
    connection, the proxy's answer; the exception's class name only when nothing says more."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return f"TLS error: {current.reason or current}"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror[:1].lower() + current.strerror[1:]
        current = current.__cause__ or current.__context__
    text = str(exc).strip()
    if isinstance(exc, httpx.ProxyError):
        return f"the proxy refused the connection: {text}" if text else "the proxy failed"
    return text or type(exc).__name__
