"""The replicas of one service, as the gateway sees them: where they are, which to use next,
which to leave alone for a while, and a pool of kept-alive connections to each.

A service URL setting (`WHEELYARD_INDEX_URL`...) is a comma-separated list of `http://host:port`
URLs; a host name may resolve to several addresses (a Kubernetes headless Service, a compose
service scaled up), each of which is a replica. Names are resolved at start and every
`RESOLVE_EVERY` seconds, so replicas that come and go are followed without a restart; a name
that does not resolve yet leaves the set empty (requests get 503) instead of failing the
gateway's start: the gateway's health never depends on the services.

- Choice: least outstanding requests; ties go round-robin, so light traffic still reaches
  every replica.
- Ejection: a replica that refuses connections is skipped for `EJECT_FIRST` seconds, doubling
  on each new refusal up to `EJECT_MAX`; once that time has passed it is tried again, and one
  successful exchange re-admits it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from wheelyard.gateway.http1 import Connection
from wheelyard.shared.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Seconds between DNS look-ups of service names.
RESOLVE_EVERY = 10.0
#: First and longest ejection of a replica that refuses connections.
EJECT_FIRST = 2.0
EJECT_MAX = 30.0
#: Seconds allowed to open a connection to a replica.
CONNECT_TIMEOUT = 3.0
#: Idle connections kept per replica, and how long one may stay idle. Services close idle
#: connections after 15 s (`wheelyard service`); ours are dropped first.
MAX_IDLE = 64
IDLE_FOR = 10.0


@dataclass(frozen=True)
class Endpoint:
    """One configured URL: a host (name or address) and a port."""

    host: str
    port: int

    @property
    def is_address(self) -> bool:
        """True when the host is an IP address (nothing to resolve)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_endpoints(value: str, setting: str) -> list[Endpoint]:
    """The endpoints of a comma-separated URL list; ConfigurationError names `setting`."""
    endpoints = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        parts = urlsplit(raw)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigurationError(
                f"{setting}: {raw!r} is not an http://host:port URL (services are reached "
                "over plain HTTP inside the cluster; list several separated by commas)"
            )
        if parts.path not in ("", "/") or parts.query:
            raise ConfigurationError(f"{setting}: {raw!r} must not have a path")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ConfigurationError(f"{setting}: {raw!r}: {exc}") from exc
        endpoints.append(Endpoint(parts.hostname, port))
    if not endpoints:
        raise ConfigurationError(f"{setting}: no URL given")
    return endpoints


class Replica:
    """One address of a service: its connection pool, load and ejection state."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.outstanding = 0
        self.ejected_until = 0.0
        self._eject_for = 0.0
        self._idle: list[Connection] = []

    def admitted(self, now: float) -> bool:
        """True unless the replica is ejected right now."""
        return now >= self.ejected_until

    async def acquire(self, *, fresh_within: float = IDLE_FOR) -> Connection:
        """A kept-alive connection idle for less than `fresh_within` seconds, or a new one.
        Raises OSError or TimeoutError when the replica cannot be reached."""
        now = time.monotonic()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < fresh_within:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _transport, conn = await loop.create_connection(Connection, self.host, self.port)
        return conn

    def release(self, conn: Connection) -> None:
        """Give a connection back: kept when it can carry another exchange, else closed."""
        if conn.reusable() and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    def refused(self, now: float) -> bool:
        """Record a refused connection; True when this ejects the replica (not already out)."""
        was_admitted = self.admitted(now)
        self._eject_for = min(EJECT_MAX, self._eject_for * 2) if self._eject_for else EJECT_FIRST
        self.ejected_until = now + self._eject_for
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        return was_admitted

    def answered(self) -> None:
        """Record a completed exchange: the replica is healthy again."""
        if self._eject_for:
            self._eject_for = 0.0
            self.ejected_until = 0.0

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class ReplicaSet:
    """The replicas of one service (see the module docstring)."""

    def __init__(self, service: str, endpoints: list[Endpoint]) -> None:
        self.service = service
        self.endpoints = endpoints
        self.replicas: list[Replica] = []
        self._turn = 0
        self._task: asyncio.Task[None] | None = None
        self._resolved: dict[Endpoint, list[tuple[str, int]]] = {}
        self.on_eject: Callable[[Replica], None] | None = None
        if all(e.is_address for e in endpoints):
            self._set([(e.host, e.port) for e in endpoints])

    @property
    def static(self) -> bool:
        """True when every endpoint is an address (no DNS involved)."""
        return all(e.is_address for e in self.endpoints)

    async def start(self) -> None:
        """Resolve names now (best effort) and keep resolving them in the background."""
        if self.static:
            return
        await self.resolve()
        self._task = asyncio.create_task(self._resolve_forever())

    async def aclose(self) -> None:
        """Stop resolving and close every idle connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            replica.close()

    def pick(self, exclude: tuple[Replica, ...] = ()) -> Replica | None:
        """The admitted replica with the fewest requests in flight (round-robin among equals),
        not in `exclude`; None when no replica is left."""
        replicas = self.replicas
        n = len(replicas)
        if n == 0:
            return None
        now = time.monotonic()
        start = self._turn = (self._turn + 1) % n
        best: Replica | None = None
        for i in range(n):
            replica = replicas[(start + i) % n]
            if replica in exclude or not replica.admitted(now):
                continue
            if best is None or replica.outstanding < best.outstanding:
                best = replica
        return best

    def retry_after(self) -> int:
        """Seconds until the first ejected replica is tried again (at least 1)."""
        now = time.monotonic()
        waits = [r.ejected_until - now for r in self.replicas if r.ejected_until > now]
        return max(1, round(min(waits))) if waits else 5

    def refused(self, replica: Replica) -> None:
        """`replica` refused a connection: eject it (see the module docstring)."""
        if replica.refused(time.monotonic()):
            log.warning(
                "%s replica %s refuses connections: ejected for %.0fs",
                self.service,
                replica.label,
                replica.ejected_until - time.monotonic(),
            )
            if self.on_eject is not None:
                self.on_eject(replica)

    def describe(self) -> dict[str, object]:
        """For readiness output: how many replicas are known and admitted."""
        now = time.monotonic()
        return {
            "replicas": len(self.replicas),
            "admitted": sum(1 for r in self.replicas if r.admitted(now)),
        }

    async def resolve(self) -> None:
        """Look the endpoints up again and update the replicas (kept ones keep their state)."""
        loop = asyncio.get_running_loop()
        found: list[tuple[str, int]] = []
        for endpoint in self.endpoints:
            if endpoint.is_address:
                found.append((endpoint.host, endpoint.port))
                continue
            try:
                infos = await loop.getaddrinfo(
                    endpoint.host, endpoint.port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                log.warning("%s: cannot resolve %s: %s", self.service, endpoint.host, exc)
                # Keep what we knew of this name rather than dropping live replicas on a blip.
                found += self._resolved.get(endpoint, [])
                continue
            addresses = [(str(info[4][0]), endpoint.port) for info in infos]
            self._resolved[endpoint] = addresses
            found += addresses
        self._set(found)

    def _set(self, addresses: list[tuple[str, int]]) -> None:
        known = {(r.host, r.port): r for r in self.replicas}
        replicas = []
        for address in dict.fromkeys(addresses):  # de-duplicated, order kept
            kept = known.pop(address, None)
            replicas.append(kept if kept is not None else Replica(*address))
        for gone in known.values():
            gone.close()
        if [r.label for r in replicas] != [r.label for r in self.replicas]:
            log.info(
                "%s replicas: %s", self.service, ", ".join(r.label for r in replicas) or "none"
            )
        self.replicas = replicas

    async def _resolve_forever(self) -> None:
        while True:
            await asyncio.sleep(RESOLVE_EVERY)
            try:
                await self.resolve()
            except Exception:  # a bug here must not stop the loop (nor the gateway)
                log.exception("%s: resolving replicas failed", self.service)
