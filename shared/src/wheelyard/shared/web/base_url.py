"""The external base URL every generated link starts with, and whether a page that holds it
may be kept by a shared cache.

Links are absolute so they resolve the same from any page (root aliases like `/simple/` serve
pages of `/repositories/default/all/`). The base is `WHEELYARD_PUBLIC_URL`, else the request's
own scheme and Host, honouring X-Forwarded-Proto/Host only when trusted.

The Host header is the client's to choose. A page whose links carry a host that is not in
`WHEELYARD_ALLOWED_HOSTS` is still answered (a client that reached us by an address of its
own gets working links) but is never publicly cacheable, so a shared cache in front cannot be
poisoned with another host's links (`shareable_base`, read by `pages.cache_control`).
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection

from wheelyard.shared.config import Settings

# A Host header is client input: accept only what a host[:port] can look like, so a hostile
# value cannot inject markup or another URL into generated links.
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$")


def _scheme_and_host(conn: HTTPConnection, settings: Settings) -> tuple[str, str]:
    headers = conn.headers
    scheme = conn.url.scheme
    host = headers.get("host", "")
    if settings.trust_proxy_headers:
        scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip() or scheme
        host = headers.get("x-forwarded-host", host).split(",")[0].strip() or host
    if scheme not in ("http", "https"):
        scheme = "http"
    if not _HOST.match(host):
        server = conn.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return scheme, host


def base_url(conn: HTTPConnection, settings: Settings) -> str:
    """`https://host[:port]` (no trailing slash) under which clients reach this registry."""
    if settings.public_url:
        return settings.public_url
    scheme, host = _scheme_and_host(conn, settings)
    return f"{scheme}://{host}"


def shareable_base(conn: HTTPConnection, settings: Settings) -> bool:
    """Whether `base_url(conn)` may appear in a page a shared cache keeps: always with
    `WHEELYARD_PUBLIC_URL`, else when its host is allowed (any host when no list is set)."""
    if settings.public_url or settings.allowed_hosts is None:
        return True
    return host_allowed(_scheme_and_host(conn, settings)[1], settings.allowed_hosts)


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether `host` (`name[:port]`) matches an entry of `allowed`: `*` matches any host,
    `name` that name on any port, `name:port` exactly, `.example.com` that domain and its
    subdomains (the convention of Django's ALLOWED_HOSTS). Case does not matter."""
    host = host.lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    for entry in allowed:
        if entry == "*" or entry in (host, name):
            return True
        if entry.startswith(".") and (name.endswith(entry) or name == entry[1:]):
            return True
    return False
