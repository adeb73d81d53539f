"""Embedded mode: a visibility change made through the management API holds at once on every
read route.

The gateway and the mounted services share one `Runtime` (one repository directory) in
embedded mode, so the request right after `PATCH ... {"visibility": "private"}` must already be
refused: no sleep, no polling, no cache lifetime to wait out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelyard.testing.checks import JSON_V1
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server_fixtures import RunningServer

CHALLENGE = 'Basic realm="wheelyard"'


@pytest.fixture(scope="module")
def setup(wheelyard_server: RunningServer) -> ManagementApi:
    return ManagementApi.of(wheelyard_server)


def test_making_a_repository_private_refuses_anonymous_reads_immediately(
    wheelyard_server: RunningServer, setup: ManagementApi, tmp_path: Path
) -> None:
    repository = setup.repository("public", prefix="going-private")
    project = unique_name("soon-private")
    wheel = make_wheel(tmp_path, project, "1.0")
    assert (
        wheelyard_server.upload(wheel, repo=wheelyard_server.upload_url(repository)).status_code
        == 200
    )
    base = f"{wheelyard_server.url}/repositories/{repository}"
    reads = {
        "simple page (HTML)": (f"{base}/simple/{project}/", {"Accept": "text/html"}),
        "simple page (JSON)": (f"{base}/simple/{project}/", {"Accept": JSON_V1}),
        "file download": (f"{base}/{project}/1.0/{wheel.name}", {}),
        "project JSON": (f"{base}/pypi/{project}/json", {}),
    }
    # Public: anyone reads it, and every route has been served (and so cached) once.
    for what, (url, headers) in reads.items():
        r = http.get(url, headers=headers)
        assert r.status_code == 200, (what, r.status_code, r.text)

    changed = setup.set_visibility(repository, "private")

    assert changed["visibility"] == "private"
    for what, (url, headers) in reads.items():
        r = http.get(url, headers=headers)
        assert r.status_code == 401, (what, r.status_code, r.text)
        assert r.headers["www-authenticate"] == CHALLENGE, what
        assert wheel.read_bytes() not in r.content, what
    # The administrator still reads it: refused for want of credentials, not gone.
    for what, (url, headers) in reads.items():
        r = http.get(url, headers=headers, auth=wheelyard_server.admin)
        assert r.status_code == 200, (what, r.status_code, r.text)
