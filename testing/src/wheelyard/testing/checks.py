"""Checks of what a server answered and what it kept, shared by the tests of the hosted
repository `default/local` (uploads refused or accepted, races, hostile input).

Each `assert`s and fails the test with the response (or the path) that broke the promise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.server_fixtures import RunningServer

#: The PEP 691 JSON media type of the simple API.
JSON_V1 = "application/vnd.pypi.simple.v1+json"


def problem_detail(response: httpx.Response) -> str:
    """The `detail` of a problem+json error response; fails when the body is anything else."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["detail"])


def refused(response: httpx.Response, status: int | Iterable[int], *needles: str) -> str:
    """Assert an error with `status` (or one of several) whose problem+json detail is not
    empty and contains every needle (case-insensitive); returns the detail."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    assert response.status_code in statuses, (response.status_code, response.text)
    text = problem_detail(response)
    assert text, "an error without a message"
    for needle in needles:
        assert needle.lower() in text.lower(), text
    return text


def project_page(client: httpx.Client, server: RunningServer, project: str) -> httpx.Response:
    """The JSON simple page of `project` in `default/local` (any status)."""
    return client.get(
        f"{server.local_simple}{canonicalize_name(project)}/", headers={"Accept": JSON_V1}
    )


def listed_files(
    client: httpx.Client, server: RunningServer, project: str
) -> dict[str, dict[str, Any]]:
    """The files the JSON simple page of `project` in `default/local` lists, by filename;
    fails unless the page is there (200)."""
    r = project_page(client, server, project)
    assert r.status_code == 200, r.text
    return {f["filename"]: f for f in r.json()["files"]}


def assert_absent(client: httpx.Client, server: RunningServer, project: str) -> None:
    """No trace of `project` in `default/local`: no simple page, no project data in the
    management API, not on the project list."""
    normalized = canonicalize_name(project)
    r = project_page(client, server, project)
    assert r.status_code == 404, r.text
    api = f"{server.url}/api/v1/repositories/default/local/projects/{normalized}"
    assert client.get(api).status_code == 404
    root = client.get(server.local_simple, headers={"Accept": JSON_V1}).json()
    assert normalized not in {canonicalize_name(p["name"]) for p in root["projects"]}


def blob_path(server: RunningServer, data: bytes) -> Path:
    """Where the server's default blob store (files under its data dir) keeps `data`."""
    digest = hashlib.sha256(data).hexdigest()
    return server.process.data_dir / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
