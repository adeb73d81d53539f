"""Metrics and logs: `/metrics` parses with the Prometheus text parser and counts what it claims,
in one process and across worker processes; route labels stay bounded; request ids are
assigned, echoed and logged; the access log is JSON, one line per request."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

from wheelyard.shared.auth.internal_jwt import PUBLIC_KEY_FILE, generate_key_files
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import RunningServer, unique_project
from wheelyard.testing.split import scrape, total

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def test_embedded_metrics_count_known_requests(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("metrics")
    assert wheelyard_server.upload(make_wheel(tmp_path, project, "1.0")).status_code == 200
    before = scrape(wheelyard_server.url)
    page = f"{wheelyard_server.local_simple}{project}/"
    for _ in range(5):
        assert httpx.get(page, headers=JSON, timeout=30).status_code == 200
    for junk in ("/no/such/thing", f"/x-{uuid.uuid4().hex}", "/api/v1/nothing-here"):
        assert httpx.get(wheelyard_server.url + junk, timeout=30).status_code == 404
    repos = httpx.get(
        wheelyard_server.url + "/api/v1/repositories", auth=wheelyard_server.admin, timeout=30
    )
    assert repos.status_code == 200
    after = scrape(wheelyard_server.url)

    def delta(name: str, /, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    requests = "wheelyard_http_requests_total"
    assert delta(requests, service="embedded", route="simple_project", status="200") == 5
    # Paths no route knows share one label value: clients cannot grow the label set.
    assert delta(requests, route="unmatched", status="404") == 3
    assert delta(requests, route="list_all_repositories", method="GET", status="200") == 1
    routes = {dict(labels)["route"] for (name, labels) in after if name == requests}
    assert not any(r.startswith("/x-") or r == "/no/such/thing" for r in routes)
    # Every process registers the same families, typed as documented.
    families = {name for name, _labels in after}
    for expected in (
        "wheelyard_http_request_duration_seconds_bucket",
        "wheelyard_http_sent_bytes_total",
        "wheelyard_cache_requests_total",
    ):
        assert expected in families


def test_request_ids_are_assigned_echoed_and_logged(
    wheelyard_server: RunningServer,
) -> None:
    forged = "client-chosen-id"
    response = httpx.get(
        wheelyard_server.url + "/healthz", headers={"X-Request-ID": forged}, timeout=30
    )
    request_id = response.headers["x-request-id"]
    # Not behind a trusted proxy: the client's id is not taken.
    assert request_id != forged and len(request_id) == 16
    deadline = time.monotonic() + 10
    while True:  # access lines are written in batches, at most half a second late
        lines = [
            json.loads(line)
            for line in wheelyard_server.process.log().splitlines()
            if line.startswith("{")
        ]
        access = [
            entry
            for entry in lines
            if entry.get("logger") == "wheelyard.access" and entry.get("request_id") == request_id
        ]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(access) == 1
    assert access[0]["status"] == 200 and access[0]["path"] == "/healthz"


def test_metrics_stay_right_across_worker_processes(tmp_path: Path, redis_url: str) -> None:
    keys = tmp_path / "keys"
    generate_key_files(keys)
    env = {
        "WHEELYARD_CACHE_URL": redis_url,
        "WHEELYARD_CACHE_PREFIX": f"wy-workers-{uuid.uuid4().hex[:8]}:",
        "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY": str(keys / PUBLIC_KEY_FILE),
    }
    server = ServerProcess(tmp_path / "index", env, command=("service", "index", "--workers", "2"))
    with server:
        metrics_dir = tmp_path / "index" / "metrics"
        before = total(scrape(server.url), "wheelyard_http_requests_total", route="healthz")
        count = 40
        for _ in range(count):  # a new connection each: the kernel spreads them over workers
            assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
        answers = set()
        for _ in range(6):  # each scrape is answered by either worker: all must agree
            answers.add(total(scrape(server.url), "wheelyard_http_requests_total", route="healthz"))
        assert answers == {before + count}
        workers = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
        assert len(workers) >= 2, sorted(metrics_dir.iterdir())


def test_web_interface_requests_are_labelled_by_their_route_template(
    wheelyard_server: RunningServer,
) -> None:
    """Pages of the web interface are counted under their path template: bounded whatever
    names are asked for, and never under an API route's name (both have a `search`)."""
    unknown = f"nothing-{uuid.uuid4().hex[:8]}"
    before = scrape(wheelyard_server.url)
    for path, status in (
        ("/ui/repositories/default/local/", 200),
        (f"/ui/repositories/default/{unknown}/", 404),
        ("/ui/search?q=metrics", 200),
    ):
        assert httpx.get(wheelyard_server.url + path, timeout=30).status_code == status, path
    after = scrape(wheelyard_server.url)

    def delta(**labels: str) -> float:
        name = "wheelyard_http_requests_total"
        return total(after, name, **labels) - total(before, name, **labels)

    page = "/ui/repositories/{storage}/{repo}/"
    assert delta(service="embedded", route=page, method="GET", status="200") == 1
    assert delta(service="embedded", route=page, method="GET", status="404") == 1
    assert delta(route="/ui/search", method="GET", status="200") == 1
    assert delta(route="search", method="GET") == 0
    routes = {dict(labels).get("route", "") for (_name, labels) in after}
    assert not any(unknown in route for route in routes)
