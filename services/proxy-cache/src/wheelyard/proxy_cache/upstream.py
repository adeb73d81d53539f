"""Talking to upstream indexes: page fetches, file streams, redirect checks, circuit breakers.

Every request to an upstream goes through `UpstreamClient`, which

- fetches project pages preferring PEP 691 JSON (HTML still accepted), conditionally (ETag /
  Last-Modified), within the upstream's timeout as a total deadline, with a hard body cap; the
  body is spooled to a temporary file (in memory while small), never held whole in memory;
- opens file streams, following at most `MAX_REDIRECTS` redirects by hand, each hop checked
  by `check_target` (SSRF, CWE-918) before anything is connected to;
- sends the upstream's credentials only to the upstream's own host (like requests and uv,
  which strip Authorization on a cross-host redirect, docs/standards.md §9);
- verifies TLS against the system trust store (`truststore`, as pip does) plus
  `WHEELYARD_PYPI_PROXY_CA_BUNDLE` and the upstream's own `ca_bundle` (a TLS-inspecting proxy,
  a private CA), and reaches upstreams through `HTTPS_PROXY`/`HTTP_PROXY` unless `NO_PROXY`
  says otherwise (`netroutes`); the SSRF guard still checks every final target;
- names the real cause of a failure ("certificate verify failed: self-signed certificate in
  certificate chain", "connection refused"), not the exception's class;
- keeps one `CircuitBreaker` per upstream, so that while an upstream is down requests fail
  (or are served stale) at once instead of each waiting the full timeout.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urljoin, urlsplit

import httpx

from wheelyard.proxy_cache.addresses import AddressGuard, UpstreamRefused
from wheelyard.proxy_cache.breaker import BreakerChange, CircuitBreaker
from wheelyard.proxy_cache.netroutes import NetRoutes, describe_failure
from wheelyard.shared.config import UpstreamConfig
from wheelyard.shared.errors import UpstreamError, UpstreamTimeout
from wheelyard.shared.metrics import UPSTREAM_FETCHES

#: Redirect hops followed for one request (files.pythonhosted.org needs none; CDNs use one).
MAX_REDIRECTS = 3
#: The largest project page accepted from an upstream (PyPI's biggest are tens of MB of JSON).
MAX_PAGE_BYTES = 64 * 1024 * 1024
#: A page body is kept in memory up to this size, on disk beyond it.
SPOOL_IN_MEMORY = 1024 * 1024
#: What we ask upstreams for: JSON first, HTML as the fallback (docs/standards.md §9).
PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
USER_AGENT = "wheelyard-proxy/0.1"


@dataclass(frozen=True)
class PageFetch:
    """An upstream's answer for one page. The caller closes `body` (a spooled file)."""

    status: int  # 200, 304 or 404
    body: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(0))  # noqa: SIM115
    content_type: str = ""
    url: str = ""  # the final URL (relative links resolve against it)
    etag: str | None = None
    last_modified: str | None = None
    serial: int | None = None  # X-PyPI-Last-Serial, when sent

    def close(self) -> None:
        """Release the spooled body."""
        self.body.close()


def project_url(upstream: UpstreamConfig, name: str) -> str:
    """`<upstream>/<name>/` for a normalized project name."""
    return upstream.url.rstrip("/") + "/" + name + "/"


def _auth_for(url: str, upstream: UpstreamConfig) -> tuple[str, str] | None:
    if upstream.username is None:
        return None
    a, b = urlsplit(url), urlsplit(upstream.url)
    same_origin = (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    return (upstream.username, upstream.password or "") if same_origin else None


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


class UpstreamClient:
    """HTTP to upstream indexes (see the module docstring). One per process."""

    def __init__(
        self,
        routes: NetRoutes | None = None,
        *,
        on_breaker_change: Callable[[object, BreakerChange], None] | None = None,
    ) -> None:
        """`on_breaker_change`: the breaker's hook (`wheelyard.proxy_cache.health`)."""
        self.routes = routes or NetRoutes()
        self.guard = AddressGuard()
        self.breaker = CircuitBreaker(on_change=on_breaker_change)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.routes.aclose()

    async def fetch_page(
        self,
        upstream: UpstreamConfig,
        name: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> PageFetch:
        """GET `<upstream>/<name>/` (conditionally when `etag`/`last_modified` are given).

        Returns status 200 (with the body), 304 or 404; raises `UpstreamTimeout` past the
        upstream's timeout (a total deadline), `UpstreamRefused` for a refused address, and
        `UpstreamError` for anything else (5xx, connection errors, oversized bodies).
        """
        headers = {"Accept": PAGE_ACCEPT, "Accept-Encoding": "gzip, deflate"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return await self.fetch_document(upstream, project_url(upstream, name), headers)

    async def fetch_document(
        self, upstream: UpstreamConfig, url: str, headers: dict[str, str]
    ) -> PageFetch:
        """GET `url` on `upstream` (a page, or a JSON API document) within the upstream's
        timeout: status 200 (body spooled, at most `MAX_PAGE_BYTES`), 304 or 404 (and 410);
        raises like `fetch_page`. Every outcome is counted (`wheelyard_upstream_fetches_total`)."""
        try:
            async with asyncio.timeout(upstream.timeout):
                fetched = await self._page(upstream, url, headers)
        except TimeoutError:
            _count("page", "timeout")
            raise UpstreamTimeout(
                f"the upstream did not answer within {upstream.timeout:g}s"
            ) from None
        except UpstreamError as exc:
            _count("page", _failure(exc))
            raise
        _count("page", _PAGE_OUTCOMES.get(fetched.status, "ok"))
        return fetched

    async def _check(self, url: str, upstream: UpstreamConfig, allow_internal: bool) -> None:
        via_proxy = self.routes.proxied(url, upstream.ca_bundle)
        await self.guard.check(url, allow_internal=allow_internal, via_proxy=via_proxy)

    async def _internal(self, upstream: UpstreamConfig) -> bool:
        via_proxy = self.routes.proxied(upstream.url, upstream.ca_bundle)
        return await self.guard.is_internal(upstream.url, via_proxy=via_proxy)

    async def _page(self, upstream: UpstreamConfig, url: str, headers: dict[str, str]) -> PageFetch:
        response, url = await self._get(url, upstream, headers)
        try:
            if response.status_code == 304:
                return PageFetch(304, url=url)
            if response.status_code in (404, 410):
                return PageFetch(404, url=url)
            if response.status_code != 200:
                raise UpstreamError(f"the upstream answered {response.status_code}")
            body = await _spool_capped(response, MAX_PAGE_BYTES)
            serial = response.headers.get("x-pypi-last-serial")
            return PageFetch(
                200,
                body=body,
                content_type=response.headers.get("content-type", ""),
                url=url,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                serial=int(serial) if serial and serial.isdigit() else None,
            )
        finally:
            await response.aclose()

    async def open_file(self, url: str, upstream: UpstreamConfig) -> httpx.Response:
        """An open 200 response streaming `url` (a link from `upstream`'s page).

        Redirects are followed by hand (at most `MAX_REDIRECTS`), every hop checked first.
        The caller must `aclose()` the response. Raises `UpstreamTimeout`, `UpstreamRefused`
        or `UpstreamError` (any other status). Every outcome is counted.
        """
        try:
            response, _url = await self._get(url, upstream, {"Accept-Encoding": "identity"})
            if response.status_code != 200:
                await response.aclose()
                raise UpstreamError(f"the upstream answered {response.status_code} for a file")
        except UpstreamError as exc:
            _count("file", _failure(exc))
            raise
        _count("file", "ok")
        return response

    async def _get(
        self, url: str, upstream: UpstreamConfig, headers: dict[str, str]
    ) -> tuple[httpx.Response, str]:
        """An open streaming response to GET `url` and the URL that answered: redirects
        followed by hand (at most `MAX_REDIRECTS`), every hop checked by the SSRF guard first,
        the upstream's credentials sent to its own origin only."""
        allow_internal = await self._internal(upstream)
        timeout = _timeout(upstream.timeout)
        http = self.routes.client(upstream.ca_bundle)
        for _hop in range(MAX_REDIRECTS + 1):
            await self._check(url, upstream, allow_internal)
            auth = _auth_for(url, upstream)
            request = http.build_request("GET", url, headers=headers, timeout=timeout)
            with failures_told(
                stalled="the upstream did not answer in time",
                broken="the upstream could not be reached",
            ):
                response = await http.send(
                    request, stream=True, auth=httpx.BasicAuth(*auth) if auth else None
                )
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                await response.aclose()
                continue
            return response, url
        raise UpstreamError(f"the upstream redirected more than {MAX_REDIRECTS} times")


_PAGE_OUTCOMES = {200: "ok", 304: "not_modified", 404: "not_found"}


def circuit_label(index: int, upstream: UpstreamConfig) -> str:
    """How an upstream is named in metrics: its position and host (never credentials)."""
    return f"{index}:{urlsplit(upstream.url).hostname or ''}"


def _failure(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamRefused):
        return "refused"
    return "error"


@contextmanager
def failures_told(*, stalled: str, broken: str) -> Iterator[None]:
    """Turn httpx's failures in the block into ours: a timeout into `UpstreamTimeout(stalled)`,
    any other into `UpstreamError("<broken>: <what failed>")` (`describe_failure`)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(stalled) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{broken}: {describe_failure(exc)}") from exc


def _count(kind: str, outcome: str) -> None:
    UPSTREAM_FETCHES.labels(kind, outcome).inc()


async def _spool_capped(response: httpx.Response, cap: int) -> IO[bytes]:
    """The response body in a spooled temporary file (rewound), refused past `cap` bytes."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise UpstreamError(f"the upstream page is larger than {cap} bytes")
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    total = 0
    try:
        with failures_told(
            stalled="the upstream page did not arrive in time",
            broken="the upstream page was cut short",
        ):
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > cap:
                    raise UpstreamError(f"the upstream page is larger than {cap} bytes")
                spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool
