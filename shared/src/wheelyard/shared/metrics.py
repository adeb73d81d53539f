"""Prometheus metrics: every metric Wheelyard exports, defined once, and their exposition.

Metric objects are module-level, unlike everything else here (no import-time state): the
Prometheus client keeps one registry per process by design, and a metric defined twice is an
error. Names and labels are the contract with the dashboards (docs/observability.md); label
values are always bounded: route *names* from `wheelyard.shared.routes`, never raw paths.

With several worker processes (`wheelyard service NAME --workers N`) the client's multiprocess
mode is used: the CLI sets `PROMETHEUS_MULTIPROC_DIR` before any worker starts, each worker
writes its values to memory-mapped files there, and `/metrics` on any worker sums them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: The environment variable of the client's multiprocess mode (set by the CLI for workers).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

HTTP_REQUESTS = Counter(
    "wheelyard_http_requests",
    "HTTP requests answered, by route template name, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "wheelyard_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_RECEIVED = Counter(
    "wheelyard_http_received_bytes",
    "Request body bytes received.",
    ["service", "route"],
)
HTTP_SENT = Counter(
    "wheelyard_http_sent_bytes",
    "Response body bytes sent.",
    ["service", "route"],
)
UPSTREAM_FETCHES = Counter(
    "wheelyard_upstream_fetches",
    "Requests to upstream indexes, by kind (page or file) and outcome.",
    ["kind", "outcome"],
)
UPSTREAM_BREAKER_OPEN = Gauge(
    "wheelyard_upstream_breaker_open",
    "1 while the circuit breaker of an upstream is open (requests skip it), else 0.",
    ["repository", "upstream"],
    multiprocess_mode="livemax",
)
CACHE_REQUESTS = Counter(
    "wheelyard_cache_requests",
    "Look-ups in Wheelyard's caches, by cache and result (hit or miss).",
    ["cache", "result"],
)
UPLOADS = Counter(
    "wheelyard_uploads",
    "Upload attempts, by outcome.",
    ["outcome"],
)
AUTH_FAILURES = Counter(
    "wheelyard_auth_failures",
    "Requests refused because their credentials did not verify, by credential kind.",
    ["method"],
)
POLICY_REFUSALS = Counter(
    "wheelyard_policy_refusals",
    "Downloads (files and PEP 658 metadata) refused by a repository's supply-chain rules, by "
    "rule (min_release_age, blocked, allowed, project_status).",
    ["rule"],
)
GATEWAY_FORWARDED = Counter(
    "wheelyard_gateway_forwarded",
    "Exchanges the gateway had with a service replica, by outcome.",
    ["service", "replica", "outcome"],
)
GATEWAY_EJECTIONS = Counter(
    "wheelyard_gateway_replica_ejections",
    "Times a replica was ejected from balancing because it refused connections.",
    ["service"],
)


def multiprocess_dir() -> Path | None:
    """The multiprocess directory when that mode is on."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _forget_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_dead_processes(directory: Path) -> None:
    """Drop the live-gauge files of workers that are gone (a crashed worker cannot say so)."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(directory))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
