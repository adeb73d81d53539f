"""Where the registry may send requests: a guard against SSRF through upstream URLs.

Link-local and cloud-metadata addresses are never allowed. Loopback, private, unique-local and
shared (CGNAT) addresses are allowed only when the operator says so
(WHEELYARD_ALLOW_PRIVATE_UPSTREAMS), since a mirror inside a company network is legitimate but
an API user pointing a proxy at internal services is an attack (Nexus CVE-2026-0600).
Hostnames are resolved and every address is checked, so a name that resolves inward fails too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import anyio

from wheelyard.shared.errors import InvalidInput

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def address_problem(address: str, *, allow_private: bool) -> str | None:
    """Why requests must not go to `address`, or None when they may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA or ip.is_link_local:
        return f"{ip} is a link-local/metadata address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a routable unicast address"
    inward = ip.is_loopback or ip.is_private or ip in _SHARED
    if inward and not allow_private:
        return (
            f"{ip} is a private or loopback address "
            "(set WHEELYARD_ALLOW_PRIVATE_UPSTREAMS=true to allow internal mirrors)"
        )
    return None


async def check_upstream_url(url: str, *, allow_private: bool) -> None:
    """Raise InvalidInput unless `url` is http(s) and every address of its host is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Upstream URL {url!r} must be http(s)://host/...")
    host = parts.hostname
    try:
        infos = await anyio.to_thread.run_sync(
            lambda: socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        )
    except OSError as exc:
        raise InvalidInput(f"Upstream host {host!r} cannot be resolved: {exc}") from exc
    for info in infos:
        problem = address_problem(str(info[4][0]), allow_private=allow_private)
        if problem:
            raise InvalidInput(f"Upstream URL {url!r} is not allowed: {problem}.")
