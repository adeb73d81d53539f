"""The PyPI JSON API documents, shaped as warehouse's legacy/api/json.py shapes them
(docs/standards.md §10)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from wheelyard.shared.errors import NotFound
from wheelyard.shared.packaging.pypi_json import (
    FileInfo,
    ReleaseInfo,
    latest_version,
    render_pypi_project_json,
    render_pypi_release_json,
)

SHA = "ab" * 32
BLAKE = "cd" * 32
MD5 = "ef" * 16
META = "12" * 32
INFO_KEYS = {
    "name",
    "version",
    "summary",
    "description",
    "description_content_type",
    "keywords",
    "license",
    "license_expression",
    "license_files",
    "classifiers",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "requires_python",
    "requires_dist",
    "provides_extra",
    "platform",
    "home_page",
    "download_url",
    "project_urls",
    "package_url",
    "project_url",
    "release_url",
    "docs_url",
    "bugtrack_url",
    "downloads",
    "yanked",
    "yanked_reason",
    "dynamic",
}


def make_file(version: str, kind: str = "whl", **overrides) -> FileInfo:
    if kind == "whl":
        filename, packagetype, pyver = f"foo_bar-{version}-py3-none-any.whl", "bdist_wheel", "py3"
    else:
        filename, packagetype, pyver = f"foo_bar-{version}.tar.gz", "sdist", "source"
    values = {
        "filename": filename,
        "packagetype": packagetype,
        "python_version": pyver,
        "url": f"https://repo.example/files/{filename}",
        "size": 1234,
        "sha256": SHA,
        "blake2_256": BLAKE,
        "md5": MD5,
        "upload_time": datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        "requires_python": ">=3.9",
    }
    values.update(overrides)
    return FileInfo(**values)


def make_release(version: str, *, yanked: bool = False, reason: str | None = None, **meta):
    metadata = {"summary": f"Foo {version}", "requires_python": ">=3.9", **meta}
    return ReleaseInfo(
        version=version,
        metadata=metadata,
        yanked=yanked,
        yanked_reason=reason,
        files=(make_file(version, "whl"), make_file(version, "sdist")),
    )


# --- latest_version ---------------------------------------------------------------------------


def versions_of(*releases: ReleaseInfo) -> str | None:
    chosen = latest_version(releases)
    return chosen.version if chosen else None


def test_latest_prefers_highest_final():
    assert versions_of(make_release("1.0"), make_release("1.10"), make_release("1.9")) == "1.10"


def test_latest_skips_prereleases_when_a_final_exists():
    assert versions_of(make_release("1.0"), make_release("2.0rc1"), make_release("2.0.dev3")) == (
        "1.0"
    )


def test_latest_skips_yanked_releases():
    assert versions_of(make_release("1.0"), make_release("2.0", yanked=True)) == "1.0"


def test_latest_prefers_non_yanked_prerelease_over_yanked_final():
    assert versions_of(make_release("2.0", yanked=True), make_release("3.0b1")) == "3.0b1"


def test_latest_with_only_prereleases_takes_highest():
    assert versions_of(make_release("1.0a1"), make_release("1.0b2")) == "1.0b2"


def test_latest_with_only_yanked_takes_highest_final():
    assert (
        versions_of(
            make_release("1.0", yanked=True),
            make_release("1.1", yanked=True),
            make_release("2.0a1", yanked=True),
        )
        == "1.1"
    )


def test_latest_post_release_counts_as_final():
    assert versions_of(make_release("1.0"), make_release("1.0.post1")) == "1.0.post1"


def test_latest_of_nothing_is_none():
    assert latest_version([]) is None


def test_latest_ranks_legacy_versions_lowest():
    assert versions_of(make_release("0.1"), make_release("not-a-version")) == "0.1"


# --- Project route ---------------------------------------------------------------------------


def render_project(*releases: ReleaseInfo, **kwargs) -> dict:
    kwargs.setdefault("last_serial", 42)
    return json.loads(render_pypi_project_json(name="Foo.Bar", releases=releases, **kwargs))


def test_project_route_shape():
    data = render_project(
        make_release("1.0"),
        make_release("2.0", yanked=True, reason="broken"),
        make_release("1.5rc1"),
        project_url="https://repo.example/project/foo-bar/",
    )
    assert set(data) == {"info", "last_serial", "urls", "releases", "vulnerabilities", "ownership"}
    info = data["info"]
    assert set(info) == INFO_KEYS
    assert info["name"] == "Foo.Bar"
    assert info["version"] == "1.0"
    assert info["summary"] == "Foo 1.0"
    assert info["yanked"] is False and info["yanked_reason"] is None
    assert info["downloads"] == {"last_day": -1, "last_week": -1, "last_month": -1}
    assert info["package_url"] == info["project_url"] == "https://repo.example/project/foo-bar/"
    assert info["release_url"] == "https://repo.example/project/foo-bar/1.0/"
    assert info["bugtrack_url"] is None and info["docs_url"] is None
    assert data["last_serial"] == 42
    assert data["vulnerabilities"] == []
    assert list(data["releases"]) == ["1.0", "1.5rc1", "2.0"]
    assert [f["filename"] for f in data["urls"]] == [
        "foo_bar-1.0-py3-none-any.whl",
        "foo_bar-1.0.tar.gz",
    ]
    assert data["urls"] == data["releases"]["1.0"]
    # A yanked release yanks every one of its files, with the release's reason.
    assert {(f["yanked"], f["yanked_reason"]) for f in data["releases"]["2.0"]} == {
        (True, "broken")
    }
    assert {(f["yanked"], f["yanked_reason"]) for f in data["urls"]} == {(False, None)}


def test_project_route_without_project_url_leaves_links_null():
    info = render_project(make_release("1.0"))["info"]
    assert info["package_url"] is None and info["release_url"] is None


def test_project_route_lists_releases_without_files():
    empty = ReleaseInfo(version="0.5", metadata={})
    data = render_project(make_release("1.0"), empty)
    assert data["releases"]["0.5"] == []


def test_project_route_without_releases_is_not_found():
    with pytest.raises(NotFound):
        render_pypi_project_json(name="foo-bar", releases=[], last_serial=1)


# --- Release route ---------------------------------------------------------------------------


def test_release_route_has_no_releases_key():
    release = make_release("2.0", yanked=True, reason="broken")
    data = json.loads(render_pypi_release_json(name="Foo.Bar", release=release, last_serial=7))
    assert "releases" not in data
    assert data["info"]["version"] == "2.0"
    assert data["info"]["yanked"] is True and data["info"]["yanked_reason"] == "broken"
    assert len(data["urls"]) == 2
    assert data["last_serial"] == 7


# --- File entries ----------------------------------------------------------------------------


def test_file_entry_shape():
    release = ReleaseInfo(
        version="1.0",
        files=(
            make_file(
                "1.0",
                upload_time=datetime(
                    2026, 3, 4, 7, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2))
                ),
                yanked=True,
                yanked_reason="bad",
                core_metadata_sha256=META,
            ),
        ),
    )
    (entry,) = json.loads(render_pypi_release_json(name="x", release=release, last_serial=1))[
        "urls"
    ]
    assert entry == {
        "filename": "foo_bar-1.0-py3-none-any.whl",
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "has_sig": False,
        "comment_text": None,
        "md5_digest": MD5,
        "digests": {"md5": MD5, "sha256": SHA, "blake2b_256": BLAKE},
        "size": 1234,
        "downloads": -1,
        "upload_time": "2026-03-04T05:06:07",
        "upload_time_iso_8601": "2026-03-04T05:06:07.890123Z",
        "url": "https://repo.example/files/foo_bar-1.0-py3-none-any.whl",
        "requires_python": ">=3.9",
        "yanked": True,
        "yanked_reason": "bad",
        "core-metadata": {"sha256": META},
    }


def test_file_entry_formats_and_optional_values():
    release = ReleaseInfo(
        version="1.0",
        files=(
            make_file(
                "1.0",
                kind="sdist",
                upload_time=datetime(2026, 1, 2, 3, 4, 5),  # naive = UTC
                md5=None,
                blake2_256=None,
                requires_python=None,
                yanked_reason="",
            ),
        ),
    )
    body = render_pypi_release_json(name="x", release=release, last_serial=1)
    (entry,) = json.loads(body)["urls"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry["upload_time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["upload_time_iso_8601"])
    assert entry["upload_time_iso_8601"] == "2026-01-02T03:04:05.000000Z"
    assert entry["md5_digest"] is None and entry["digests"]["md5"] is None
    assert entry["requires_python"] is None
    assert entry["yanked_reason"] is None
    assert entry["core-metadata"] is False
    assert entry["packagetype"] == "sdist" and entry["python_version"] == "source"
    assert b"dist-info-metadata" not in body


# --- info from metadata ----------------------------------------------------------------------


def test_info_fields_from_metadata():
    metadata = {
        "summary": "A thing",
        "description": "# Hello",
        "description_content_type": "text/markdown",
        "keywords": ["a", "b"],
        "license": None,
        "license_expression": "MIT",
        "license_files": ["LICENSE"],
        "classifiers": ["Programming Language :: Python :: 3"],
        "author": "A",
        "author_email": "a@example.com",
        "maintainer": "M",
        "maintainer_email": "m@example.com",
        "requires_python": ">=3.9",
        "requires_dist": ["requests>=2", 'tomli; python_version < "3.11"'],
        "provides_extra": ["cli"],
        "platforms": ["linux", "win32"],
        "home_page": "https://home.example",
        "download_url": "https://dl.example",
        "project_urls": {"Source": "https://git.example/foo"},
        "dynamic": ["Version"],
    }
    info = render_project(ReleaseInfo(version="1.0", metadata=metadata))["info"]
    assert info["summary"] == "A thing"
    assert info["description"] == "# Hello"
    assert info["description_content_type"] == "text/markdown"
    assert info["keywords"] == "a,b"
    assert info["license"] is None and info["license_expression"] == "MIT"
    assert info["license_files"] == ["LICENSE"]
    assert info["classifiers"] == ["Programming Language :: Python :: 3"]
    assert info["requires_dist"] == ["requests>=2", 'tomli; python_version < "3.11"']
    assert info["provides_extra"] == ["cli"]
    assert info["platform"] == "linux, win32"
    assert info["project_urls"] == {"Source": "https://git.example/foo"}
    assert info["dynamic"] == ["Version"]
    assert info["home_page"] == "https://home.example"
    assert info["maintainer_email"] == "m@example.com"


def test_info_empty_metadata_is_nulls_like_pypi():
    info = render_project(ReleaseInfo(version="1.0"))["info"]
    assert info["classifiers"] == []
    for key in (
        "summary",
        "keywords",
        "requires_dist",
        "provides_extra",
        "project_urls",
        "dynamic",
        "license_files",
        "platform",
    ):
        assert info[key] is None, key


def test_keywords_string_is_kept():
    info = render_project(ReleaseInfo(version="1.0", metadata={"keywords": "a b,c"}))["info"]
    assert info["keywords"] == "a b,c"


def test_output_is_compact_ascii_json():
    body = render_pypi_project_json(
        name="x",
        releases=[ReleaseInfo(version="1.0", metadata={"summary": "naïve ✓"})],
        last_serial=1,
    )
    body.decode("ascii")
    assert b'": ' not in body
    assert json.loads(body)["info"]["summary"] == "naïve ✓"
