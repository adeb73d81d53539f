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

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never reachable through an upstream, whatever the configuration: cloud metadata services
# (AWS/GCP/Azure 169.254.169.254 and fd00:ec2::254, Alibaba 100.100.100.200, Oracle
# 192.0.0.192), all of link-local, and what is not unicast (artifact-keeper PR #881,
# envoy PR #45360).
_ALWAYS_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "192.0.0.192/32",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "ff00::/8",
        "::/128",
    )
]
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def plain_ip(address: str | IPAddress) -> IPAddress:
    """The address as the kernel sees it (`::ffff:127.0.0.1` is 127.0.0.1)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_internal(address: str | IPAddress) -> bool:
    """Loopback, private, unique-local, shared (CGNAT) or reserved."""
    ip = plain_ip(address)
    return ip.is_private or ip.is_loopback or ip.is_reserved or ip in _SHARED


def address_problem(address: str | IPAddress, *, allow_private: bool) -> str | None:
    """Why requests must not go to `address`, or None when they may."""
    ip = plain_ip(address)
    if any(ip in net for net in _ALWAYS_BLOCKED):
        return f"{ip} is a link-local, metadata or non-unicast address"
    if is_internal(ip) and not allow_private:
        return (
            f"{ip} is a private or loopback address "
            "(set WHEELYARD_ALLOW_PRIVATE_UPSTREAMS=true to allow internal mirrors)"
        )
    return None


async def check_upstream_url(url: str, *, allow_private: bool) -> None:
    """Raise InvalidInput unless `url` is http(s) and every address of its host is allowed."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as exc:  # a bracketed host that is not IPv6, a port out of range
        raise InvalidInput(f"Upstream URL {url!r} is not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Upstream URL {url!r} must be http(s)://host/...")
    host = parts.hostname
    try:
        infos = await anyio.to_thread.run_sync(
            lambda: socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        )
    except (OSError, UnicodeError) as exc:  # UnicodeError: a label IDNA cannot encode
        raise InvalidInput(f"Upstream host {host!r} cannot be resolved: {exc}") from exc
    for info in infos:
        problem = address_problem(str(info[4][0]), allow_private=allow_private)
        if problem:
            raise InvalidInput(f"Upstream URL {url!r} is not allowed: {problem}.")
