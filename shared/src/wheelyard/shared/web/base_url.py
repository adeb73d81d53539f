"""The external base URL every generated link starts with.

Links are absolute so they resolve the same from any page (root aliases like `/simple/` serve
pages of `/repositories/default/all/`). The base is `WHEELYARD_PUBLIC_URL`, else the request's
own scheme and Host, honouring X-Forwarded-Proto/Host only when trusted.
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection

from wheelyard.shared.config import Settings

# A Host header is client input: accept only what a host[:port] can look like, so a hostile
# value cannot inject markup or another URL into generated links.
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$")


def base_url(conn: HTTPConnection, settings: Settings) -> str:
    """`https://host[:port]` (no trailing slash) under which clients reach this registry."""
    if settings.public_url:
        return settings.public_url
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
    return f"{scheme}://{host}"
