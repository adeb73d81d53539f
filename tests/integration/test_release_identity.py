"""Releases are immutable whatever the spelling of a filename (issue 9, "Releases are immutable").

A file's identity is what an installer sees: for a wheel (project, canonical version, build
tag, tag set), for an sdist (project, canonical version). `pkg-1.0-py3-none-any.whl`,
`pkg-1.0.0-py3-none-any.whl`, `pkg-v1.0-py3-none-any.whl` and `pkg-1.0-py3.py2-none-any.whl`
vs `pkg-1.0-py2.py3-none-any.whl` are one file to pip: a second one with other bytes would be
installed instead of the first. Against a real `wheelyard serve` process.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from wheelyard.testing.dist_factory import TarMember, escaped_name, make_sdist, make_wheel
from wheelyard.testing.server_fixtures import RunningServer, unique_project

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def listed(server: RunningServer, project: str) -> dict[str, str]:
    """{filename: sha256} of the project's simple page."""
    r = httpx.get(
        f"{server.local_simple}{canonicalize_name(project)}/",
        headers={"Accept": JSON_V1},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {f["filename"]: f["hashes"]["sha256"] for f in r.json()["files"]}


def detail(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["detail"])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_wheel(tmp_path: Path, project: str, filename: str, marker: str) -> Path:
    """A wheel of `project` 1.0 named `filename` whose bytes differ from every other."""
    directory = tmp_path / marker
    directory.mkdir()
    return make_wheel(
        directory, project, "1.0", filename=filename, extra_members={"marker.txt": marker}
    )


def test_other_spellings_of_a_wheel_with_other_bytes_are_refused_naming_the_first(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project()
    stem = escaped_name(project)
    original = make_wheel(tmp_path, project, "1.0", tag="py2.py3-none-any")
    assert original.name == f"{stem}-1.0-py2.py3-none-any.whl"
    assert wheelyard_server.upload(original).status_code == 200
    spellings = [
        f"{stem}-1.0.0-py2.py3-none-any.whl",
        f"{stem}-v1.0-py2.py3-none-any.whl",
        f"{stem}-1.0-py3.py2-none-any.whl",
        f"{stem}-1.0.0.0-py3.py2-none-any.whl",
    ]
    for i, filename in enumerate(spellings):
        newcomer = other_wheel(tmp_path, project, filename, f"n{i}")
        r = wheelyard_server.upload(newcomer)
        assert r.status_code == 409, (filename, r.status_code, r.text)
        text = detail(r)
        assert text.startswith("File already exists"), text
        assert original.name in text and filename in text, text
    # Only the first file is offered to installers, with its own bytes.
    assert listed(wheelyard_server, project) == {original.name: sha(original)}


def test_a_different_build_tag_or_tag_set_is_a_different_file(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project()
    stem = escaped_name(project)
    names = [
        f"{stem}-1.0-py3-none-any.whl",
        f"{stem}-1.0-1-py3-none-any.whl",  # a build tag: pip prefers it, by design
        f"{stem}-1.0-py2.py3-none-any.whl",  # another tag set
    ]
    for i, filename in enumerate(names):
        r = wheelyard_server.upload(other_wheel(tmp_path, project, filename, f"b{i}"))
        assert r.status_code == 200, (filename, r.text)
    assert set(listed(wheelyard_server, project)) == set(names)


def test_the_same_bytes_under_another_spelling_succeed_as_the_stored_file(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    """A retry of a finished upload is a success, so `twine --skip-existing` and
    `uv publish --check-url` go on; nothing new is listed."""
    project = unique_project()
    original = make_wheel(tmp_path, project, "1.0")
    assert wheelyard_server.upload(original).status_code == 200
    renamed_dir = tmp_path / "renamed"
    renamed_dir.mkdir()
    renamed = renamed_dir / original.name.replace("-1.0-", "-1.0.0-")
    renamed.write_bytes(original.read_bytes())
    r = wheelyard_server.upload(renamed)
    assert r.status_code == 200, r.text
    assert listed(wheelyard_server, project) == {original.name: sha(original)}


def test_a_deleted_files_identity_is_never_filled_again(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project()
    stem = escaped_name(project)
    original = make_wheel(tmp_path, project, "1.0")
    assert wheelyard_server.upload(original).status_code == 200
    api = (
        f"{wheelyard_server.url}/api/v1/repositories/default/local/projects/"
        f"{canonicalize_name(project)}/versions/1.0/files/{original.name}"
    )
    r = httpx.delete(api, auth=wheelyard_server.admin, timeout=30)
    assert r.status_code == 200, r.text
    for i, filename in enumerate([f"{stem}-1.0.0-py3-none-any.whl", f"{stem}-v1-py3-none-any.whl"]):
        r = wheelyard_server.upload(other_wheel(tmp_path, project, filename, f"d{i}"))
        assert r.status_code == 400, (filename, r.text)
        text = detail(r)
        assert "previously used" in text and original.name in text, text
    # The same bytes under another name do not bring the deleted file back either.
    again = tmp_path / "again"
    again.mkdir()
    same = again / f"{stem}-1.0.0-py3-none-any.whl"
    same.write_bytes(original.read_bytes())
    r = wheelyard_server.upload(same)
    assert r.status_code == 400 and "previously used" in detail(r), r.text
    page = httpx.get(f"{wheelyard_server.local_simple}{canonicalize_name(project)}/", timeout=30)
    assert page.status_code in (200, 404) and ".whl" not in page.text, page.text


def test_one_sdist_per_release_whatever_the_version_spelling(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project()
    first = make_sdist(tmp_path, project, "1.0")
    assert wheelyard_server.upload(first).status_code == 200
    other = tmp_path / "other"
    other.mkdir()
    second = make_sdist(
        other,
        project,
        "1.0.0",
        extra_members=[TarMember(f"{escaped_name(project)}-1.0.0/x.txt", "other")],
    )
    r = wheelyard_server.upload(second)
    assert r.status_code == 409, r.text
    text = detail(r)
    assert text.startswith("File already exists") and first.name in text, text
    assert listed(wheelyard_server, project) == {first.name: sha(first)}


async def test_racing_spellings_with_different_bytes_admit_exactly_one(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    """The unique constraint, not a check-then-insert, decides between concurrent uploads."""
    project = unique_project()
    stem = escaped_name(project)
    versions = ["1", "1.0", "1.0.0", "v1", "v1.0", "1.0.0.0", "V1.0", "1.00"]
    paths = [
        other_wheel(tmp_path, project, f"{stem}-{v}-py3-none-any.whl", f"r{i}")
        for i, v in enumerate(versions)
    ]
    gate = asyncio.Event()

    async def upload(path: Path) -> httpx.Response:
        data = path.read_bytes()
        form = {
            ":action": "file_upload",
            "protocol_version": "1",
            "name": project,
            "version": path.name.split("-")[1],
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        }
        async with httpx.AsyncClient(timeout=120, auth=wheelyard_server.admin) as client:
            await client.get(wheelyard_server.url + "/healthz")
            await gate.wait()
            return await client.post(
                wheelyard_server.local + "/",
                data=form,
                files={"content": (path.name, data, "application/octet-stream")},
            )

    tasks = [asyncio.create_task(upload(p)) for p in paths]
    await asyncio.sleep(0.3)
    gate.set()
    responses = await asyncio.gather(*tasks)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: len(paths) - 1}, [(r.status_code, r.text) for r in responses]
    winner = paths[next(i for i, r in enumerate(responses) if r.status_code == 200)]
    for r in responses:
        if r.status_code == 409:
            assert detail(r).startswith("File already exists") and winner.name in detail(r)
    assert listed(wheelyard_server, project) == {winner.name: sha(winner)}
