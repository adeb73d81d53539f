"""Conformance of the legacy upload API, over HTTP against a real `wheelyard serve` process: the
answers of PyPI's upload API (warehouse's forklift/legacy.py) that publishers rely on, and the
checks of the filename, the form and the archive (docs/standards.md §2, §7 and §8).

Forms are built by hand (`wheelyard.testing.uploads`) so a test controls every byte: part
order, missing fields, a part without Content-Type, hostile filenames. Every refused upload is
followed by a check that nothing became visible. What real publishers do with the answers
(`uv publish`, `--skip-existing`, `uv publish --check-url`) is tested in tests/e2e/.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.utils import canonicalize_name

from wheelyard.testing.checks import (
    assert_absent,
    blob_path,
    listed_files,
    project_page,
    refused,
)
from wheelyard.testing.dist_factory import (
    TarMember,
    escaped_name,
    make_sdist,
    make_wheel,
    make_wheel_with_zeros,
    metadata_text,
    sdist_filename,
)
from wheelyard.testing.server_fixtures import RunningServer, unique_project
from wheelyard.testing.uploads import FILE_CONTENT_TYPE, FieldValue, upload_bytes

# ------------------------------------------------------------------------------------------
# Helpers


def upload(
    client: httpx.Client,
    server: RunningServer,
    filename: str,
    data: bytes,
    *,
    url: str | None = None,
    content_type: str | None = FILE_CONTENT_TYPE,
    **overrides: FieldValue,
) -> httpx.Response:
    """POST a legacy upload as the admin; `overrides` replace twine's fields (None drops one)."""
    return upload_bytes(
        url or server.upload_url(),
        filename,
        data,
        overrides=overrides,
        auth=server.admin,
        client=client,
        content_type=content_type,
    )


def upload_path(
    client: httpx.Client, server: RunningServer, path: Path, **overrides: Any
) -> httpx.Response:
    return upload(client, server, path.name, path.read_bytes(), **overrides)


def file_url(server: RunningServer, project: str, version: str, filename: str) -> str:
    return f"{server.local}/{canonicalize_name(project)}/{version}/{filename}"


def no_new_files(data_dir: Path, since: float, needle: str) -> None:
    """Nothing named after `needle` was written anywhere around the server's data."""
    for path in data_dir.parent.rglob("*"):
        if needle in path.name:
            assert path.stat().st_mtime < since, f"{path} was written"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


# ------------------------------------------------------------------------------------------
# A valid upload shows up at once, with the right hash, size and time


def test_wheel_and_sdist_upload_appear_immediately(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project("Up.Load")
    paths = [make_wheel(tmp_path, name, "1.0"), make_sdist(tmp_path, name, "1.0")]
    before = datetime.now(UTC) - timedelta(seconds=2)
    for path in paths:
        r = upload_path(client, wheelyard_server, path)
        assert r.status_code == 200, r.text
        # Read-after-write: the very next request sees the file (uv publish --check-url).
        assert path.name in listed_files(client, wheelyard_server, name)
    after = datetime.now(UTC) + timedelta(seconds=2)
    files = listed_files(client, wheelyard_server, name)
    assert set(files) == {p.name for p in paths}
    html = client.get(f"{wheelyard_server.local_simple}{canonicalize_name(name)}/").text
    for path in paths:
        data = path.read_bytes()
        entry = files[path.name]
        digest = hashlib.sha256(data).hexdigest()
        assert entry["hashes"]["sha256"] == digest
        assert entry["size"] == len(data)
        uploaded = datetime.fromisoformat(entry["upload-time"].replace("Z", "+00:00"))
        assert before <= uploaded <= after
        assert f"{path.name}#sha256={digest}" in html
        assert client.get(entry["url"]).content == data


# ------------------------------------------------------------------------------------------
# Re-uploads: the same bytes are a no-op, other bytes "File already exists" (docs/standards.md §7)


def test_identical_reupload_is_200_without_duplicate(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    for _ in range(3):
        r = upload_path(client, wheelyard_server, path)
        assert r.status_code == 200, r.text
    r = project_page(client, wheelyard_server, name)
    assert [f["filename"] for f in r.json()["files"]] == [path.name]
    html = client.get(f"{wheelyard_server.local_simple}{canonicalize_name(name)}/").text
    assert html.count(f">{path.name}</a>") == 1


def test_different_bytes_under_existing_filename_conflict(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    original = make_wheel(tmp_path, name, "1.0")
    original_bytes = original.read_bytes()
    assert upload_path(client, wheelyard_server, original).status_code == 200
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    changed = make_wheel(other_dir, name, "1.0", extra_members={"extra.txt": "different"})
    assert changed.name == original.name and changed.read_bytes() != original_bytes
    r = upload_path(client, wheelyard_server, changed)
    assert r.status_code in (400, 409)
    assert refused(r, r.status_code, "File already exists").startswith("File already exists")
    served = client.get(file_url(wheelyard_server, name, "1.0", original.name))
    assert served.content == original_bytes
    entry = listed_files(client, wheelyard_server, name)[original.name]
    assert entry["hashes"]["sha256"] == hashlib.sha256(original_bytes).hexdigest()


# ------------------------------------------------------------------------------------------
# The form, the filename and the archive are checked; nothing is stored (docs/standards.md
# §2, §7 and §8)


def test_digest_mismatch_and_missing_digest_are_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    wrong = hashlib.sha256(b"something else").hexdigest()
    refused(
        upload_path(client, wheelyard_server, path, sha256_digest=wrong),
        400,
        "digest",
        "does not match",
    )
    wrong_blake = hashlib.blake2b(b"x", digest_size=32).hexdigest()
    refused(
        upload_path(client, wheelyard_server, path, blake2_256_digest=wrong_blake),
        400,
        "does not match",
    )
    refused(upload_path(client, wheelyard_server, path, md5_digest="0" * 32), 400, "does not match")
    refused(
        upload_path(client, wheelyard_server, path, sha256_digest=None, blake2_256_digest=None),
        400,
        "digest",
    )
    assert_absent(client, wheelyard_server, name)
    assert not blob_path(wheelyard_server, path.read_bytes()).exists(), (
        "a refused upload left a blob"
    )


@pytest.mark.parametrize(
    ("kind", "fields", "needle"),
    [
        ("sdist", {"pyversion": "py3"}, "source"),
        ("wheel", {"pyversion": None}, "Python version is required"),
        ("wheel", {"filetype": "bdist_egg"}, "bdist_egg"),
        ("sdist", {"filetype": "bdist_wheel"}, "filetype"),
        ("wheel", {"filetype": None}, "filetype"),
    ],
    ids=["sdist-py3", "wheel-no-pyversion", "bdist-egg", "sdist-as-wheel", "no-filetype"],
)
def test_filetype_and_pyversion_are_checked(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    tmp_path: Path,
    kind: str,
    fields: dict[str, str | None],
    needle: str,
) -> None:
    name = unique_project()
    maker = make_sdist if kind == "sdist" else make_wheel
    path = maker(tmp_path, name, "1.0")
    refused(upload_path(client, wheelyard_server, path, **fields), 400, needle)
    assert_absent(client, wheelyard_server, name)


def test_form_or_metadata_disagreeing_with_filename_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    other = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    refused(upload_path(client, wheelyard_server, path, name=other), 400, other)
    refused(upload_path(client, wheelyard_server, path, version="2.0"), 400, "version")
    lying_dir = tmp_path / "lying"
    lying_dir.mkdir()
    wrong_name = make_wheel(lying_dir, name, "1.0", metadata=metadata_text(other, "1.0"))
    refused(upload_path(client, wheelyard_server, wrong_name), 400, "Name", other)
    wrong_dir = tmp_path / "lying-version"
    wrong_dir.mkdir()
    wrong_version = make_wheel(wrong_dir, name, "1.0", metadata=metadata_text(name, "1.1"))
    refused(upload_path(client, wheelyard_server, wrong_version), 400, "Version", "1.1")
    assert_absent(client, wheelyard_server, name)
    assert_absent(client, wheelyard_server, other)


def test_non_normalized_or_invalid_filenames_are_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    token = unique_project("x").split("-")[1]
    name = f"Foo.Bar{token}"
    normal = escaped_name(name)
    wheel = make_wheel(tmp_path, name, "1.0").read_bytes()
    for bad in (f"Foo.Bar{token}-1.0-py3-none-any.whl", f"Foo_Bar{token}-1.0-py3-none-any.whl"):
        refused(upload(client, wheelyard_server, bad, wheel), 400, "normalized", normal)
    refused(
        upload(client, wheelyard_server, f"{normal}-1.0-x1-py3-none-any.whl", wheel), 400, "build"
    )
    sdist = make_sdist(tmp_path, name, "1.0").read_bytes()
    bad_sdist = f"Foo-Bar{token}-1.0.tar.gz"
    refused(
        upload(client, wheelyard_server, bad_sdist, sdist, name=name, version="1.0"),
        400,
        f"foo_bar{token}-1.0.tar.gz",
    )
    refused(
        upload(client, wheelyard_server, f"{normal}-01.0.tar.gz", sdist),
        400,
        f"{normal}-1.0.tar.gz",
    )
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize(
    "filename",
    [
        "evil/{n}-1.0-py3-none-any.whl",
        "evil\\{n}-1.0-py3-none-any.whl",
        "../{n}-1.0-py3-none-any.whl",
        "{n}-1.0-py3-none-any.whl/..",
        "{n}\x01-1.0-py3-none-any.whl",
        "{n}-1.0-py3-none-any.whl\x7f",
        "{n}\t-1.0-py3-none-any.whl",
        "{n}-1.0-py3-none-any..whl",
    ],
    ids=[
        "slash",
        "backslash",
        "dotdot",
        "trailing-dotdot",
        "control",
        "del",
        "tab",
        "inline-dotdot",
    ],
)
def test_content_filename_with_path_or_control_characters_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, filename: str
) -> None:
    name = unique_project()
    data = make_wheel(tmp_path, name, "1.0").read_bytes()
    bad = filename.format(n=escaped_name(name))
    r = upload(client, wheelyard_server, bad, data, name=name, version="1.0", pyversion="py3")
    refused(r, 400)
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize("missing", ["METADATA", "WHEEL", "RECORD"])
def test_wheel_without_required_dist_info_file_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, missing: str
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0", omit=[missing])
    refused(upload_path(client, wheelyard_server, path), 400, "Invalid distribution file", missing)
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize("case", ["no-pkg-info", "symlinked-pkg-info", "hardlinked-pkg-info"])
def test_sdist_without_regular_pkg_info_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, case: str
) -> None:
    name = unique_project()
    top = f"{escaped_name(name)}-1.0"
    if case == "no-pkg-info":
        path = make_sdist(tmp_path, name, "1.0", omit_pkg_info=True)
    else:
        link_type = tarfile.SYMTYPE if case.startswith("sym") else tarfile.LNKTYPE
        target = "pyproject.toml" if link_type == tarfile.SYMTYPE else f"{top}/pyproject.toml"
        link = TarMember(f"{top}/PKG-INFO", type=link_type, linkname=target)
        path = make_sdist(tmp_path, name, "1.0", pkg_info=link)
    refused(
        upload_path(client, wheelyard_server, path), 400, "Invalid distribution file", "PKG-INFO"
    )
    assert_absent(client, wheelyard_server, name)


def test_zip_bomb_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    path = make_wheel_with_zeros(tmp_path, name, "1.0", size=96 * 1024 * 1024)
    assert path.stat().st_size < 1024 * 1024  # ratio far above 50
    r = upload_path(client, wheelyard_server, path)
    refused(r, 400, "Invalid distribution file", "compression ratio")
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (TarMember("{top}/../evil-{tok}", "x"), ".."),
        (TarMember("/tmp/evil-{tok}", "x"), "absolute"),
        (TarMember("{top}/dev-{tok}", type=tarfile.CHRTYPE), "device"),
        (TarMember("{top}/fifo-{tok}", type=tarfile.FIFOTYPE), "FIFO"),
        (TarMember("{top}/sparse-{tok}", type=tarfile.GNUTYPE_SPARSE), "sparse"),
        (TarMember("{top}/link-{tok}", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "absolute"),
        (TarMember("{top}/up-{tok}", type=tarfile.SYMTYPE, linkname="../../../x"), "outside"),
    ],
    ids=["dotdot", "absolute", "device", "fifo", "sparse", "symlink-abs", "symlink-up"],
)
def test_dangerous_tar_members_are_refused(
    client: httpx.Client,
    wheelyard_server: RunningServer,
    tmp_path: Path,
    member: TarMember,
    needle: str,
) -> None:
    name = unique_project()
    token = name.rsplit("-", 1)[1]
    top = f"{escaped_name(name)}-1.0"
    hostile = TarMember(
        member.name.format(top=top, tok=token),
        member.content,
        type=member.type,
        linkname=member.linkname,
    )
    tar_format = tarfile.GNU_FORMAT if member.type == tarfile.GNUTYPE_SPARSE else tarfile.PAX_FORMAT
    path = make_sdist(tmp_path, name, "1.0", extra_members=[hostile], tar_format=tar_format)
    started = datetime.now().timestamp()
    refused(upload_path(client, wheelyard_server, path), 400, "Invalid distribution file", needle)
    assert_absent(client, wheelyard_server, name)
    no_new_files(wheelyard_server.process.data_dir, started, token)
    assert not Path(f"/tmp/evil-{token}").exists()


def test_second_sdist_for_a_release_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    first = make_sdist(tmp_path, name, "1.0")
    assert upload_path(client, wheelyard_server, first).status_code == 200
    second = make_sdist(tmp_path, name, "1.0.0")  # the same release: 1.0 == 1.0.0
    assert second.name == sdist_filename(name, "1.0.0") != first.name
    # An sdist's identity is (project, canonical version): the release has its sdist already.
    refused(upload_path(client, wheelyard_server, second), 409, "File already exists", first.name)
    assert set(listed_files(client, wheelyard_server, name)) == {first.name}
    # A wheel for the same release is still welcome.
    assert (
        upload_path(client, wheelyard_server, make_wheel(tmp_path, name, "1.0")).status_code == 200
    )


# ------------------------------------------------------------------------------------------
# Upload URLs, retired actions, metadata versions (docs/standards.md §7 and §8)


@pytest.mark.parametrize("suffix", ["/legacy", "/legacy/", "", "/"])
def test_upload_urls_are_processed_without_redirect(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, suffix: str
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    r = upload_path(client, wheelyard_server, path, url=wheelyard_server.local + suffix)
    assert r.status_code == 200, (r.status_code, r.headers, r.text)
    assert path.name in listed_files(client, wheelyard_server, name)


def test_content_part_without_content_type_is_accepted(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    # uv publish sends the file part with no Content-Type, which a form part may omit
    # (RFC 7578 §4.4).
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    assert upload_path(client, wheelyard_server, path, content_type=None).status_code == 200
    assert path.name in listed_files(client, wheelyard_server, name)


@pytest.mark.parametrize("action", ["submit", "submit_pkg_info", "doc_upload"])
def test_retired_actions_are_gone(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, action: str
) -> None:
    name = unique_project()
    path = make_wheel(tmp_path, name, "1.0")
    r = upload_path(client, wheelyard_server, path, **{":action": action})
    assert r.status_code in (400, 410), r.text
    assert r.status_code != 200
    assert "was ever registered" not in r.text  # poetry would answer with `submit`
    assert_absent(client, wheelyard_server, name)


@pytest.mark.parametrize("spelling", ["import_name", "import_names"])
def test_metadata_2_5_import_name_is_accepted(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path, spelling: str
) -> None:
    name = unique_project()
    module = escaped_name(name)
    metadata = metadata_text(
        name,
        "1.0",
        metadata_version="2.5",
        extra_headers=[("Import-Name", module), ("Import-Namespace", "nsp")],
    )
    path = make_wheel(tmp_path, name, "1.0", metadata=metadata)
    r = upload_path(
        client,
        wheelyard_server,
        path,
        metadata_version="2.5",
        **{spelling: [module], spelling.replace("name", "namespace"): ["nsp"]},
    )
    assert r.status_code == 200, r.text
    assert path.name in listed_files(client, wheelyard_server, name)
    normalized = canonicalize_name(name)
    api = f"{wheelyard_server.url}/api/v1/repositories/default/local/projects/{normalized}"
    stored = client.get(api).json()["versions"][0]["metadata"]
    assert stored["metadata_version"] == "2.5"
    assert stored["import_names"] == [module]
    assert stored["import_namespaces"] == ["nsp"]


def test_metadata_version_2_0_is_refused(
    client: httpx.Client, wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    name = unique_project()
    in_file = make_wheel(tmp_path, name, "1.0", metadata_version="2.0")
    refused(upload_path(client, wheelyard_server, in_file), 400, "2.0")
    good_dir = tmp_path / "good"
    good_dir.mkdir()
    in_form = make_wheel(good_dir, name, "1.0")
    refused(upload_path(client, wheelyard_server, in_form, metadata_version="2.0"), 400, "2.0")
    assert_absent(client, wheelyard_server, name)
