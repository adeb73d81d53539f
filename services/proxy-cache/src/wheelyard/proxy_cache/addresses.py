"""The SSRF guard of upstream requests: which hosts a configured URL, a page link or a redirect
may make us connect to (Nexus CVE-2022-27907 and CVE-2026-0600 were about exactly this)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from wheelyard.shared.errors import UpstreamError
from wheelyard.shared.netpolicy import IPAddress, address_problem, is_internal

#: How long an address check of a host name is remembered.
_RESOLVE_TTL = 60.0


class UpstreamRefused(UpstreamError):
    """A URL or redirect that must not be followed (SSRF guard); answered 502."""


def address_allowed(ip: IPAddress, *, allow_internal: bool) -> bool:
    """May an upstream request connect to `ip`? Metadata and link-local never; loopback and
    private ranges only when the configured upstream itself lives there."""
    return address_problem(ip, allow_private=allow_internal) is None


class AddressGuard:
    """Checks the hosts upstream requests go to (configured URL, page links, redirects)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, bool], tuple[float, bool]] = {}
        self._internal: dict[str, tuple[float, bool]] = {}

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to (an IP literal is itself)."""
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UpstreamError(f"upstream host {host!r} does not resolve: {exc}") from exc
        return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]

    async def is_internal(self, url: str, *, via_proxy: bool = False) -> bool:
        """True when the configured upstream `url` resolves to loopback or private addresses
        (then its links and redirects may point there too: a mirror on the same network).
        Reached `via_proxy`, a name this host cannot resolve is external."""
        parts = urlsplit(url)
        key = f"{parts.hostname}:{parts.port}"
        now = time.monotonic()
        known = self._internal.get(key)
        if known is not None and known[0] > now:
            return known[1]
        try:
            ips = await self.addresses(parts.hostname or "", parts.port or 443)
        except UpstreamError:
            if via_proxy:
                return False
            raise
        internal = any(is_internal(ip) for ip in ips)
        if len(self._internal) > 1024:
            self._internal.clear()
        self._internal[key] = (now + _RESOLVE_TTL, internal)
        return internal

    async def check(self, url: str, *, allow_internal: bool, via_proxy: bool = False) -> None:
        """Raise `UpstreamRefused` unless `url` is http(s) to an allowed address.

        Reached `via_proxy` (HTTPS_PROXY), a host name this host cannot resolve is let through:
        behind a company's egress proxy only the proxy resolves public names, and it applies its
        own policy. IP literals and names that do resolve here are checked as always.

        Known limit (docs/security.md, "Upstreams"): the address is checked here and resolved
        again by the HTTP client (or the proxy) when it connects; a DNS answer that changes in
        between (rebinding) is not caught.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamRefused(f"refusing to fetch a non-http(s) URL from the upstream: {url!r}")
        host = parts.hostname
        key = (f"{host}:{parts.port}", allow_internal)
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            allowed = known[1]
        else:
            try:
                ips = await self.addresses(
                    host, parts.port or (443 if parts.scheme == "https" else 80)
                )
            except UpstreamError:
                if not via_proxy:
                    raise
                return  # only the proxy can resolve it (not remembered: it may start to)
            allowed = bool(ips) and all(
                address_allowed(ip, allow_internal=allow_internal) for ip in ips
            )
            if len(self._known) > 4096:
                self._known.clear()
            self._known[key] = (now + _RESOLVE_TTL, allowed)
        if not allowed:
            raise UpstreamRefused(
                f"refusing to fetch {parts.scheme}://{host}/...: the address is internal or "
                "reserved (SSRF guard)"
            )
