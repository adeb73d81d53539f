"""Anonymous page requests answered again from the bytes of the last answer, in the HTTP
protocol (wheelyard.shared.web.replay, docs/adr/0008-replayed-pages.md), on a real server.

A replayed answer must be indistinguishable from the application's own except for what is
fresh per answer (Date, X-Request-ID); it must never outlive a change (an upload, a visibility
change) nor reach a request with credentials or conditions; and every replay is still counted
in the metrics and the access log.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from wheelyard.shared.web import replay
from wheelyard.testing.checks import JSON_V1
from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi, unique_name
from wheelyard.testing.server_fixtures import RunningServer


def _sample(server: RunningServer, metric: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _replays(server: RunningServer) -> float:
    return _sample(server, "wheelyard_cache_requests_total", cache="replay", result="hit")


@pytest.fixture(scope="module")
def api(wheelyard_server: RunningServer) -> ManagementApi:
    return ManagementApi.of(wheelyard_server)


@pytest.fixture
def published(
    wheelyard_server: RunningServer, api: ManagementApi, tmp_path: Path
) -> tuple[str, str, str]:
    """A public repository holding one project at 1.0: (repository, project, page URL)."""
    repository = api.repository("public", prefix="replayed")
    project = unique_name("replayed")
    wheel = make_wheel(tmp_path, project, "1.0")
    response = wheelyard_server.upload(wheel, repo=wheelyard_server.upload_url(repository))
    assert response.status_code == 200, response.text
    url = f"{wheelyard_server.url}/repositories/{repository}/simple/{project}/"
    return repository, project, url


def test_a_repeated_page_is_replayed_with_fresh_ids_and_counted(
    wheelyard_server: RunningServer, published: tuple[str, str, str]
) -> None:
    _, _, url = published
    path = httpx.URL(url).path
    requests_before = _sample(
        wheelyard_server, "wheelyard_http_requests_total", route="simple_project", status="200"
    )
    replays_before = _replays(wheelyard_server)
    with httpx.Client(headers={"Accept": JSON_V1}) as client:
        answers = [client.get(url) for _ in range(6)]

    first = answers[0]
    assert all(a.status_code == 200 for a in answers)
    assert {a.content for a in answers} == {first.content}
    for answer in answers[1:]:
        assert {k: v for k, v in answer.headers.items() if k not in {"date", "x-request-id"}} == {
            k: v for k, v in first.headers.items() if k not in {"date", "x-request-id"}
        }
        assert answer.headers["date"].endswith(" GMT")
        assert int(answer.headers["content-length"]) == len(first.content)
    ids = [a.headers["x-request-id"] for a in answers]
    assert len(set(ids)) == len(ids)
    # The first answer was the application's, rendering and storing the page (a write, so it
    # is not kept); the second was kept; the later ones were replays, counted as requests of
    # their route like any other.
    assert _replays(wheelyard_server) - replays_before == 4
    requests_after = _sample(
        wheelyard_server, "wheelyard_http_requests_total", route="simple_project", status="200"
    )
    assert requests_after - requests_before >= 6
    deadline = time.monotonic() + 5  # access lines are written in batches (<= 0.5 s late)
    while time.monotonic() < deadline:
        log = wheelyard_server.process.log()
        if all(f'"request_id": "{i}"' in log for i in ids):
            break
        time.sleep(0.2)
    lines = [line for line in log.splitlines() if any(f'"request_id": "{i}"' in line for i in ids)]
    assert len(lines) == len(ids)
    assert all(f'"path": "{path}"' in line and '"status": 200' in line for line in lines)
    assert all('"route": "simple_project"' in line for line in lines)


def test_an_upload_is_in_the_very_next_answer(
    wheelyard_server: RunningServer, published: tuple[str, str, str], tmp_path: Path
) -> None:
    repository, project, url = published
    with httpx.Client(headers={"Accept": JSON_V1}) as client:
        before = _replays(wheelyard_server)
        for _ in range(3):
            assert client.get(url).status_code == 200
        assert _replays(wheelyard_server) > before  # the page is being replayed

        wheel = make_wheel(tmp_path, project, "2.0")
        upload = wheelyard_server.upload(wheel, repo=wheelyard_server.upload_url(repository))
        assert upload.status_code == 200, upload.text

        page = client.get(url).json()
    assert wheel.name in [f["filename"] for f in page["files"]]
    assert "2.0" in page["versions"]


def test_a_repository_made_private_is_refused_by_the_very_next_answer(
    wheelyard_server: RunningServer, api: ManagementApi, published: tuple[str, str, str]
) -> None:
    repository, _, url = published
    with httpx.Client(headers={"Accept": JSON_V1}) as client:
        for _ in range(3):
            assert client.get(url).status_code == 200
        api.set_visibility(repository, "private")
        refused = client.get(url)
    assert refused.status_code == 401


def test_requests_with_credentials_or_conditions_are_never_replayed(
    wheelyard_server: RunningServer, published: tuple[str, str, str]
) -> None:
    _, _, url = published
    with httpx.Client(headers={"Accept": JSON_V1}) as client:
        for _ in range(3):
            public = client.get(url)
        assert public.headers["cache-control"].startswith("public")
        before = _replays(wheelyard_server)

        signed_in = client.get(url, auth=wheelyard_server.admin)
        conditional = client.get(url, headers={"If-None-Match": public.headers["etag"]})
        cookie = client.get(url, headers={"Cookie": "anything=1"})

        assert _replays(wheelyard_server) == before
    # The application's own answers: private for a signed-in reader, 304 for a match.
    assert signed_in.status_code == 200
    assert signed_in.headers["cache-control"] == "private, no-cache"
    assert conditional.status_code == 304
    assert cookie.status_code == 200


@pytest.mark.parametrize("sent", ["whole, from memory", "by path"])
def test_a_file_is_replayed_until_it_is_deleted(
    wheelyard_server: RunningServer, published: tuple[str, str, str], tmp_path: Path, sent: str
) -> None:
    repository, project, _ = published
    version = "3.0" if sent == "whole, from memory" else "4.0"
    # Random bytes do not deflate: a wheel this large is sent by path (sendfile), not kept.
    noise = {f"{project}/noise.bin": os.urandom(4 * replay.MAX_BODY)} if version == "4.0" else None
    wheel = make_wheel(tmp_path, project, version, extra_members=noise)
    if noise is None:
        assert wheel.stat().st_size < replay.MAX_BODY
    else:
        assert wheel.stat().st_size > 4 * replay.MAX_BODY
    upload = wheelyard_server.upload(wheel, repo=wheelyard_server.upload_url(repository))
    assert upload.status_code == 200, upload.text
    url = f"{wheelyard_server.url}/repositories/{repository}/{project}/{version}/{wheel.name}"
    with httpx.Client() as client:
        before = _replays(wheelyard_server)
        answers = [client.get(url) for _ in range(5)]
        replayed = _replays(wheelyard_server) - before
        first = answers[0]
        assert {a.content for a in answers} == {wheel.read_bytes()}
        for answer in answers[1:]:
            assert {
                k: v for k, v in answer.headers.items() if k not in {"date", "x-request-id"}
            } == {k: v for k, v in first.headers.items() if k not in {"date", "x-request-id"}}
        ids = [a.headers["x-request-id"] for a in answers]
        assert len(set(ids)) == len(ids)
        assert replayed >= 3  # the first answers are the application's (one of them kept)
        # A range goes to the application, as any header outside the replayable ones does.
        ranged = client.get(url, headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == wheel.read_bytes()[:10]

        deleted = client.delete(
            f"{wheelyard_server.url}/api/v1/repositories/{repository}/projects/{project}"
            f"/versions/{version}/files/{wheel.name}",
            auth=wheelyard_server.admin,
        )
        assert deleted.status_code == 200, deleted.text
        gone = client.get(url)
    assert gone.status_code == 404
    assert wheel.read_bytes() not in gone.content


def test_a_file_of_a_private_repository_is_never_replayed(
    wheelyard_server: RunningServer, api: ManagementApi, tmp_path: Path
) -> None:
    repository = api.repository("private", prefix="replayed")
    project = unique_name("replayed")
    noise = {f"{project}/noise.bin": os.urandom(4 * replay.MAX_BODY)}
    wheel = make_wheel(tmp_path, project, "1.0", extra_members=noise)
    upload = wheelyard_server.upload(wheel, repo=wheelyard_server.upload_url(repository))
    assert upload.status_code == 200, upload.text
    url = f"{wheelyard_server.url}/repositories/{repository}/{project}/1.0/{wheel.name}"
    before = _replays(wheelyard_server)
    with httpx.Client() as client:
        allowed = [client.get(url, auth=wheelyard_server.admin) for _ in range(3)]
        anonymous = [client.get(url) for _ in range(3)]
    assert all(a.status_code == 200 and a.content == wheel.read_bytes() for a in allowed)
    assert all(a.status_code in (401, 404) for a in anonymous)
    assert _replays(wheelyard_server) == before


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-head"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))  # none on a 304
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    buffer[:] = rest[length:]
    return status.encode(), headers, rest[:length]


def test_pipelined_requests_are_answered_in_order(
    wheelyard_server: RunningServer, published: tuple[str, str, str]
) -> None:
    _, project, url = published
    parsed = httpx.URL(url)
    host = f"{parsed.host}:{parsed.port}"

    def request(accept: str, *extra: str) -> bytes:
        lines = [f"GET {parsed.path} HTTP/1.1", f"Host: {host}", f"Accept: {accept}", *extra]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    json_page = httpx.get(url, headers={"Accept": JSON_V1}).content
    html_page = httpx.get(url, headers={"Accept": "text/html"}).content
    etag = httpx.get(url, headers={"Accept": JSON_V1}).headers["etag"]
    conditional = request(JSON_V1, f"If-None-Match: {etag}")
    batches = [
        # Parsed in one read: the first goes to the application, the rest wait behind it;
        # each answer is kept.
        [request(JSON_V1), request("text/html"), request(JSON_V1), request("text/html")],
        # The same again: replayed, one after the other, in order.
        [request(JSON_V1), request("text/html"), request(JSON_V1), request("text/html")],
        # The application answers the first (a condition is never replayed): the replayable
        # ones behind it wait their turn.
        [conditional, request("text/html"), request(JSON_V1), conditional, request(JSON_V1)],
    ]
    expected = [
        [json_page, html_page, json_page, html_page],
        [json_page, html_page, json_page, html_page],
        [b"", html_page, json_page, b"", json_page],
    ]
    replays = []
    with socket.create_connection((parsed.host, parsed.port), timeout=10) as sock:
        buffer = bytearray()
        for batch, bodies in zip(batches, expected, strict=True):
            before = _replays(wheelyard_server)
            sock.sendall(b"".join(batch))
            answers = [_read_response(sock, buffer) for _ in batch]
            replays.append(_replays(wheelyard_server) - before)
            for (status, headers, body), wanted in zip(answers, bodies, strict=True):
                assert status == (b"HTTP/1.1 200 OK" if wanted else b"HTTP/1.1 304 Not Modified")
                assert body == wanted
                if wanted:
                    assert headers["content-type"].startswith(
                        "text/html"
                        if wanted == html_page
                        else "application/vnd.pypi.simple.v1+json"
                    )
    assert project.encode() in json_page
    assert replays[0] == 0
    assert replays[1] == 4


def test_a_replayed_file_and_the_requests_pipelined_behind_it_keep_their_order(
    wheelyard_server: RunningServer, published: tuple[str, str, str], tmp_path: Path
) -> None:
    repository, project, url = published
    noise = {f"{project}/noise.bin": os.urandom(4 * replay.MAX_BODY)}
    wheel = make_wheel(tmp_path, project, "5.0", extra_members=noise)
    upload = wheelyard_server.upload(wheel, repo=wheelyard_server.upload_url(repository))
    assert upload.status_code == 200, upload.text
    file_url = httpx.URL(
        f"{wheelyard_server.url}/repositories/{repository}/{project}/5.0/{wheel.name}"
    )
    page_url = httpx.URL(url)
    host = f"{page_url.host}:{page_url.port}"

    def request(target: httpx.URL) -> bytes:
        return f"GET {target.raw_path.decode()} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    page = httpx.get(url).content
    data = wheel.read_bytes()
    with socket.create_connection((page_url.host, page_url.port), timeout=10) as sock:
        buffer = bytearray()
        for _ in range(2):  # answered by the application, then kept
            sock.sendall(request(file_url))
            assert _read_response(sock, buffer)[2] == data
        before = _replays(wheelyard_server)
        # One read: the file is replayed (by path), the rest wait behind it in order, the
        # second file replayed too once its turn comes.
        sock.sendall(request(file_url) + request(page_url) + request(file_url))
        answers = [_read_response(sock, buffer) for _ in range(3)]
        replayed = _replays(wheelyard_server) - before
    assert [status for status, _, _ in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert [body for _, _, body in answers] == [data, page, data]
    assert replayed >= 2
