"""Split mode: an ASGI app that forwards a request to a service over HTTP, streaming both ways.

`httpx.ASGITransport` would buffer whole bodies, so this forwards with a real HTTP client and
never holds a file body in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Scope, Send

# Hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded. Host is: services build the links
# in their pages from it, and those must point at the gateway, not at the service.
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}
# The gateway's own server adds these to every response; the service's copies would double them.
_RESPONSE_OWN = {b"date", b"server"}


class Forwarder:
    """Forwards HTTP requests to `base_url` (a service in split mode)."""

    def __init__(self, base_url: str, *, timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        query = scope.get("query_string", b"")
        url = self.base_url + scope["raw_path"].decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        request = self.client.build_request(
            scope["method"], url, headers=headers, content=_body(receive)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError:
            await _send_plain(send, 503, b"The service behind the gateway is unavailable.")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v)
                        for k, v in response.headers.raw
                        if k.lower() not in _HOP_BY_HOP and k.lower() not in _RESPONSE_OWN
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.client.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _send_plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": body})
