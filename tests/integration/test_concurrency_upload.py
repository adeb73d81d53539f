"""Concurrent uploads and deletes on a hosted repository: of two different files under one name
exactly one wins, identical uploads succeed once, a new project takes many files at once, and a
deleted filename is never reused, as on PyPI (https://pypi.org/help/#file-name-reuse; a
delete and re-upload that swaps a release is stevearc/pypicloud#259). The answers a client
matches are those of docs/standards.md §7.

Requests race for real: many connections to a real `wheelyard serve` process, released at once.
The database's unique constraints decide every race; the tests check the outcomes a client can
see (status codes and messages, what the index lists, the bytes served), never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.checks import JSON_V1, listed_files, problem_detail
from wheelyard.testing.dist_factory import TarMember, escaped_name, make_sdist, make_wheel
from wheelyard.testing.server_fixtures import RunningServer, unique_project
from wheelyard.testing.uploads import FORM_CONTENT_TYPE, form_body


class Racer:
    """Fires requests at the server at the same moment, each on its own connection."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.gate = asyncio.Event()

    async def _go(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        headers = {"Content-Type": FORM_CONTENT_TYPE} if content else {}
        async with httpx.AsyncClient(timeout=120, auth=self.server.admin) as client:
            # Connect first, so the requests leave together once the gate opens.
            await client.get(self.server.url + "/healthz")
            await self.gate.wait()
            return await client.request(method, url, content=content, headers=headers)

    def upload(self, path: Path) -> asyncio.Task[httpx.Response]:
        body = form_body(path.name, path.read_bytes())
        return asyncio.create_task(self._go("POST", self.server.upload_url(), body))

    def delete(self, url: str) -> asyncio.Task[httpx.Response]:
        return asyncio.create_task(self._go("DELETE", url))

    async def run(self, tasks: list[asyncio.Task[httpx.Response]]) -> list[httpx.Response]:
        await asyncio.sleep(0.3)  # every client connected and waiting
        self.gate.set()
        return list(await asyncio.gather(*tasks))


def no_server_errors(responses: list[httpx.Response]) -> None:
    errors = [(r.status_code, r.text) for r in responses if r.status_code >= 500]
    assert errors == [], errors


def file_api(server: RunningServer, project: str, version: str, filename: str | None) -> str:
    base = (
        f"{server.url}/api/v1/repositories/default/local/projects/"
        f"{canonicalize_name(project)}/versions/{version}"
    )
    return base + (f"/files/{filename}" if filename else "")


def variants(tmp_path: Path, name: str, count: int) -> list[Path]:
    """`count` wheels with the same filename and different bytes, one per directory."""
    paths = []
    for i in range(count):
        directory = tmp_path / f"v{i}"
        directory.mkdir()
        paths.append(make_wheel(directory, name, "1.0", extra_members={"variant.txt": str(i)}))
    assert len({p.name for p in paths}) == 1
    assert len({p.read_bytes() for p in paths}) == count
    return paths


async def test_same_filename_different_bytes_exactly_one_wins(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    paths = variants(tmp_path, name, 8)
    racer = Racer(wheelyard_server)
    responses = await racer.run([racer.upload(p) for p in paths])
    no_server_errors(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, [(r.status_code, r.text) for r in responses]
    for r in responses:
        if r.status_code != 200:
            assert r.status_code in (400, 409)
            assert problem_detail(r).startswith("File already exists"), r.text
    winner = paths[next(i for i, r in enumerate(responses) if r.status_code == 200)].read_bytes()
    with httpx.Client(timeout=30) as client:
        files = listed_files(client, wheelyard_server, name)
        assert list(files) == [paths[0].name]
        entry = files[paths[0].name]
        served = client.get(entry["url"]).content
    assert served == winner
    assert entry["hashes"]["sha256"] == hashlib.sha256(served).hexdigest()
    assert entry["size"] == len(served)


async def test_identical_concurrent_uploads_all_succeed_once(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    racer = Racer(wheelyard_server)
    responses = await racer.run([racer.upload(path) for _ in range(8)])
    no_server_errors(responses)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    with httpx.Client(timeout=30) as client:
        files = listed_files(client, wheelyard_server, name)
        assert list(files) == [path.name]
        assert client.get(files[path.name]["url"]).content == path.read_bytes()


async def test_twenty_files_to_a_new_project_at_once(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project("Brand.New")
    paths = [make_wheel(tmp_path, name, f"1.{i}") for i in range(10)]
    paths += [make_sdist(tmp_path, name, f"1.{i}") for i in range(10)]
    racer = Racer(wheelyard_server)
    responses = await racer.run([racer.upload(p) for p in paths])
    no_server_errors(responses)
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    normalized = canonicalize_name(name)
    with httpx.Client(timeout=30) as client:
        files = listed_files(client, wheelyard_server, name)
        assert set(files) == {p.name for p in paths}
        for p in paths:
            assert files[p.name]["hashes"]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        root = client.get(wheelyard_server.local_simple, headers={"Accept": JSON_V1}).json()
        assert [canonicalize_name(p["name"]) for p in root["projects"]].count(normalized) == 1
        api = f"{wheelyard_server.url}/api/v1/repositories/default/local/projects/{normalized}"
        details = client.get(api).json()
        assert details["name"] == normalized
        assert sorted(v["version"] for v in details["versions"]) == sorted(
            f"1.{i}" for i in range(10)
        )


def test_deleted_filename_cannot_be_reused(wheelyard_server: RunningServer, tmp_path: Path) -> None:
    name = unique_project()
    sdist = make_sdist(tmp_path, name, "1.0")
    wheel = make_wheel(tmp_path, name, "1.0")
    with httpx.Client(timeout=30, auth=wheelyard_server.admin) as client:
        for path in (sdist, wheel):
            assert wheelyard_server.upload(path).status_code == 200
        r = client.delete(file_api(wheelyard_server, name, "1.0", sdist.name))
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] == [sdist.name]
        assert sdist.name not in listed_files(client, wheelyard_server, name)
        # The same bytes, and other bytes under the same name: both refused, with the reason.
        other_dir = tmp_path / "other"
        other_dir.mkdir()
        extra = TarMember(f"{escaped_name(name)}-1.0/changed.txt", "other bytes")
        other = make_sdist(other_dir, name, "1.0", extra_members=[extra])
        assert other.name == sdist.name and other.read_bytes() != sdist.read_bytes()
        for path in (sdist, other):
            r = wheelyard_server.upload(path)
            assert r.status_code == 400, r.text
            assert "previously used" in problem_detail(r)
        # Deleting the whole release reserves the wheel's name too.
        assert client.delete(file_api(wheelyard_server, name, "1.0", None)).status_code == 200
        r = wheelyard_server.upload(wheel)
        assert r.status_code == 400 and "previously used" in problem_detail(r)
        download = f"{wheelyard_server.local}/{canonicalize_name(name)}/1.0/{sdist.name}"
        assert client.get(download).status_code == 404
        page = client.get(f"{wheelyard_server.local_simple}{canonicalize_name(name)}/")
        assert page.status_code in (200, 404)
        assert sdist.name not in page.text and wheel.name not in page.text


async def test_delete_racing_reuploads_never_resurrects(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    for round_number in range(3):  # the delete lands at a different point each time
        name = unique_project()
        directory = tmp_path / str(round_number)
        directory.mkdir()
        same, *others = variants(directory, name, 3)
        assert wheelyard_server.upload(same).status_code == 200
        url = file_api(wheelyard_server, name, "1.0", same.name)
        racer = Racer(wheelyard_server)
        tasks = [racer.delete(url)]
        tasks += [racer.upload(same) for _ in range(3)] + [racer.upload(p) for p in others]
        delete, *uploads = await racer.run(tasks)
        no_server_errors([delete, *uploads])
        assert delete.status_code == 200, delete.text
        for r, path in zip(uploads, [same] * 3 + others, strict=True):
            if r.status_code == 200:
                assert path is same  # an identical re-upload that ran before the delete
            else:
                assert r.status_code in (400, 409), r.text
                text = problem_detail(r)
                assert "previously used" in text or text.startswith("File already exists")
        with httpx.Client(timeout=30) as client:
            download = f"{wheelyard_server.local}/{canonicalize_name(name)}/1.0/{same.name}"
            assert client.get(download).status_code == 404
            page = client.get(f"{wheelyard_server.local_simple}{canonicalize_name(name)}/")
            assert same.name not in page.text
        again = wheelyard_server.upload(same)
        assert again.status_code == 400 and "previously used" in problem_detail(again)
