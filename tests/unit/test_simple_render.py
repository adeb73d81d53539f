"""Rendering of simple-API pages: PEP 503 HTML and PEP 691 JSON with PEP 592, 629, 658/714 and 700
(docs/standards.md §3, §4 and §6)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pypi_simple import ProjectPage as ParsedPage

from wheelyard.shared.packaging.simple.model import (
    ProjectList,
    ProjectPage,
    SimpleFile,
    sort_versions,
)
from wheelyard.shared.packaging.simple.render_html import render_index_html, render_project_html
from wheelyard.shared.packaging.simple.render_json import render_index_json, render_project_json
from wheelyard.shared.web.conditional import etag_for, if_none_match_matches

SHA = "0123456789abcdef" * 4
META_SHA = "fedcba9876543210" * 4
UPLOAD_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
BASE = "https://repo.example/simple/foo-bar/"


def make_file(
    version: str = "1.0",
    *,
    kind: str = "whl",
    sha256: str | None = SHA,
    size: int | None = 1110,
    upload_time: datetime | None = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    requires_python: str | None = None,
    yanked: bool | str = False,
    core_metadata_sha256: str | None = None,
    has_core_metadata: bool = False,
    url: str | None = None,
) -> SimpleFile:
    filename = (
        f"foo_bar-{version}-py3-none-any.whl" if kind == "whl" else f"foo_bar-{version}.tar.gz"
    )
    return SimpleFile(
        filename=filename,
        url=url or f"../../files/{filename}",
        sha256=sha256,
        size=size,
        upload_time=upload_time,
        requires_python=requires_python,
        yanked=yanked,
        core_metadata_sha256=core_metadata_sha256,
        has_core_metadata=has_core_metadata,
    )


def make_page(*files: SimpleFile, status: str | None = None, reason: str | None = None):
    versions = [f.filename.split("-")[1].removesuffix(".tar.gz") for f in files]
    return ProjectPage(
        name="foo-bar", files=list(files), versions=versions, status=status, status_reason=reason
    )


def parse_html(body: bytes) -> ParsedPage:
    return ParsedPage.from_html("foo-bar", body, base_url=BASE, from_encoding="utf-8")


def json_files(body: bytes) -> list[dict]:
    return json.loads(body)["files"]


# --- HTML -----------------------------------------------------------------------------------


def test_html_has_repository_version_meta_and_anchor_text_is_filename():
    body = render_project_html(make_page(make_file(), make_file("1.1", kind="sdist")))
    text = body.decode()
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta name="pypi:repository-version" content="1.4">' in text
    anchors = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', text)
    assert len(anchors) == 2
    for href, anchor_text in anchors:
        path, _, fragment = href.partition("#")
        assert path.rsplit("/", 1)[-1] == anchor_text  # PEP 503: the text is the filename
        assert fragment == f"sha256={SHA}"


def test_html_escapes_requires_python():
    text = render_project_html(make_page(make_file(requires_python=">=3.8,<4"))).decode()
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in text
    assert parse_html(text.encode()).packages[0].requires_python == ">=3.8,<4"


def test_html_omits_absent_attributes():
    text = render_project_html(make_page(make_file())).decode()
    assert "data-requires-python" not in text
    assert "data-core-metadata" not in text
    assert "data-dist-info-metadata" not in text
    assert "data-yanked" not in text  # PEP 592: not yanked, no attribute


def test_html_yanked_without_reason_is_empty_value_never_bare():
    text = render_project_html(make_page(make_file(yanked=True))).decode()
    assert 'data-yanked=""' in text
    assert re.search(r"data-yanked(?!=)", text) is None
    parsed = parse_html(text.encode()).packages[0]
    assert parsed.is_yanked and parsed.yanked_reason == ""


def test_html_empty_reason_string_is_yanked_without_reason():
    text = render_project_html(make_page(make_file(yanked=""))).decode()
    assert 'data-yanked=""' in text


def test_html_yanked_reason_is_escaped():
    reason = 'broken "build" <script>alert(1)</script> & more'
    text = render_project_html(make_page(make_file(yanked=reason))).decode()
    assert "<script>" not in text
    assert 'data-yanked="broken &quot;build&quot; &lt;script&gt;' in text
    assert parse_html(text.encode()).packages[0].yanked_reason == reason


def test_html_core_metadata_both_names_identical():
    text = render_project_html(make_page(make_file(core_metadata_sha256=META_SHA))).decode()
    assert f'data-core-metadata="sha256={META_SHA}"' in text
    assert f'data-dist-info-metadata="sha256={META_SHA}"' in text  # old PEP 658 name, same value


def test_html_core_metadata_marker_without_hash():
    text = render_project_html(make_page(make_file(has_core_metadata=True))).decode()
    assert 'data-core-metadata="true"' in text
    assert 'data-dist-info-metadata="true"' in text
    assert parse_html(text.encode()).packages[0].has_metadata is True


def test_html_file_without_sha256_has_no_fragment():
    text = render_project_html(make_page(make_file(sha256=None))).decode()
    assert "#" not in re.search(r'href="([^"]+)"', text).group(1)


def test_html_url_and_filename_are_escaped():
    f = SimpleFile(
        filename="x&y.whl", url='https://h/a"b?<c>&d', sha256=None, size=1
    )  # not plausible names, but the renderer must stay safe for any input
    text = render_project_html(ProjectPage("x", [f], [])).decode()
    assert 'href="https://h/a&quot;b?&lt;c&gt;&amp;d"' in text
    assert ">x&amp;y.whl</a>" in text


def test_html_project_status_meta_only_when_not_active():
    active = render_project_html(make_page(make_file(), status="active", reason="fine")).decode()
    assert "pypi:project-status" not in active
    archived = render_project_html(
        make_page(make_file(), status="archived", reason='moved to "baz" <x>')
    ).decode()
    assert '<meta name="pypi:project-status" content="archived">' in archived
    assert (
        '<meta name="pypi:project-status-reason" content="moved to &quot;baz&quot; &lt;x&gt;">'
        in archived
    )
    parsed = parse_html(archived.encode())
    assert str(parsed.status) == "archived"
    assert parsed.status_reason == 'moved to "baz" <x>'


def test_html_quarantined_lists_no_files():
    text = render_project_html(make_page(make_file(), status="quarantined")).decode()
    assert "<a " not in text
    assert 'content="quarantined"' in text


def test_html_empty_project_is_valid_page():
    text = render_project_html(ProjectPage("foo-bar", [], [])).decode()
    assert "<a " not in text
    assert parse_html(text.encode()).packages == []


def test_html_round_trip_through_pypi_simple_keeps_every_field():
    files = [
        make_file("1.0", requires_python=">=3.8,<4", core_metadata_sha256=META_SHA),
        make_file("1.0", kind="sdist", requires_python=">=3.8,<4"),
        make_file("1.1", yanked="security: CVE-2026-1 <bad>", core_metadata_sha256=META_SHA),
        make_file("1.2", yanked=True),
    ]
    parsed = parse_html(render_project_html(make_page(*files)))
    assert parsed.repository_version == "1.4"
    assert len(parsed.packages) == len(files)
    for original, got in zip(files, parsed.packages, strict=True):
        assert got.filename == original.filename
        assert got.url == BASE.removesuffix("simple/foo-bar/") + original.url.removeprefix("../../")
        assert got.digests == {"sha256": original.sha256}
        assert got.requires_python == original.requires_python
        assert got.is_yanked is (original.yanked is not False)
        if isinstance(original.yanked, str):
            assert got.yanked_reason == original.yanked
        if original.core_metadata_sha256:
            assert got.metadata_digests == {"sha256": original.core_metadata_sha256}
        else:
            assert got.has_metadata is None


# --- JSON -----------------------------------------------------------------------------------


def test_json_shape_and_keys():
    f = make_file(requires_python=">=3.8", core_metadata_sha256=META_SHA)
    data = json.loads(render_project_json(make_page(f)))
    assert data["meta"] == {"api-version": "1.4"}
    assert data["name"] == "foo-bar"
    assert data["versions"] == ["1.0"]
    assert "project-status" not in data
    assert data["files"] == [
        {
            "filename": f.filename,
            "url": f.url,
            "hashes": {"sha256": SHA},
            "requires-python": ">=3.8",
            "core-metadata": {"sha256": META_SHA},
            "yanked": False,
            "size": 1110,
            "upload-time": "2026-01-01T12:00:00.123456Z",
        }
    ]


def test_json_is_compact():
    body = render_project_json(make_page(make_file()))
    assert b": " not in body and b", " not in body


def test_json_never_contains_dist_info_metadata():
    page = make_page(
        make_file(core_metadata_sha256=META_SHA), make_file("2", has_core_metadata=True)
    )
    assert b"dist-info-metadata" not in render_project_json(page)


def test_json_core_metadata_false_true_and_hash():
    files = json_files(
        render_project_json(
            make_page(
                make_file("1"),
                make_file("2", has_core_metadata=True),
                make_file("3", core_metadata_sha256=META_SHA),
            )
        )
    )
    assert [f["core-metadata"] for f in files] == [False, True, {"sha256": META_SHA}]


def test_json_yanked_values():
    files = json_files(
        render_project_json(
            make_page(
                make_file("1"),
                make_file("2", yanked=True),
                make_file("3", yanked=""),
                make_file("4", yanked="broken"),
            )
        )
    )
    assert [f["yanked"] for f in files] == [False, True, True, "broken"]


def test_json_requires_python_absent_and_not_escaped():
    files = json_files(
        render_project_json(make_page(make_file("1"), make_file("2", requires_python=">=3.8,<4")))
    )
    assert "requires-python" not in files[0]
    assert files[1]["requires-python"] == ">=3.8,<4"


def test_json_hashes_object_stays_when_sha256_unknown():
    (entry,) = json_files(render_project_json(make_page(make_file(sha256=None))))
    assert entry["hashes"] == {}


def test_json_upload_time_format_is_utc_with_z():
    times = [
        datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),  # microseconds still emitted
        datetime(2026, 1, 1, 14, 30, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 1, 12, 0, 0),  # naive is taken as UTC
    ]
    files = json_files(
        render_project_json(
            make_page(*(make_file(str(i), upload_time=t) for i, t in enumerate(times)))
        )
    )
    stamps = [f["upload-time"] for f in files]
    assert all(UPLOAD_TIME_RE.match(s) for s in stamps)
    assert stamps == [
        "2026-01-01T12:00:00.123456Z",
        "2026-01-01T12:00:00.000000Z",
        "2026-01-01T12:30:00.000000Z",
        "2026-01-01T12:00:00.000000Z",
    ]


def test_json_optional_size_and_upload_time_omitted_when_unknown():
    (entry,) = json_files(render_project_json(make_page(make_file(size=None, upload_time=None))))
    assert "size" not in entry and "upload-time" not in entry


def test_json_versions_sorted_and_deduplicated():
    page = ProjectPage(
        name="foo-bar",
        files=[],
        versions=["1.10", "1.2", "1.0rc1", "1.0", "01.2", "2.0.dev1", "1.0.post1", "1.2"],
    )
    assert json.loads(render_project_json(page))["versions"] == [
        "1.0rc1",
        "1.0",
        "1.0.post1",
        "1.2",
        "1.10",
        "2.0.dev1",
    ]


def test_sort_versions_keeps_legacy_strings_first():
    assert sort_versions(["1.0", "not a version", "0.9"]) == ["not a version", "0.9", "1.0"]


def test_json_project_status_when_set():
    data = json.loads(render_project_json(make_page(make_file(), status="active")))
    assert data["project-status"] == {"status": "active"}
    data = json.loads(render_project_json(make_page(make_file(), status="deprecated", reason="r")))
    assert data["project-status"] == {"status": "deprecated", "reason": "r"}


def test_json_quarantined_lists_no_files():
    data = json.loads(render_project_json(make_page(make_file(), status="quarantined")))
    assert data["files"] == []
    assert data["project-status"]["status"] == "quarantined"


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="unknown project status"):
        ProjectPage("foo-bar", [], [], status="frozen")


def test_json_round_trip_through_pypi_simple_keeps_every_field():
    files = [
        make_file("1.0", requires_python=">=3.8,<4", core_metadata_sha256=META_SHA),
        make_file("1.1", yanked="reason", has_core_metadata=True),
        make_file("1.2", yanked=True, sha256=None, size=None, upload_time=None),
    ]
    parsed = ParsedPage.from_json_data(json.loads(render_project_json(make_page(*files))), BASE)
    assert parsed.versions == ["1.0", "1.1", "1.2"]
    for original, got in zip(files, parsed.packages, strict=True):
        assert got.filename == original.filename
        assert got.digests == ({"sha256": original.sha256} if original.sha256 else {})
        assert got.requires_python == original.requires_python
        assert got.size == original.size
        assert got.upload_time == original.upload_time
        assert got.is_yanked is (original.yanked is not False)
    assert parsed.packages[0].metadata_digests == {"sha256": META_SHA}
    assert parsed.packages[1].has_metadata is True
    assert parsed.packages[1].yanked_reason == "reason"
    assert parsed.packages[2].yanked_reason is None


def test_json_escapes_non_ascii_and_stays_valid():
    page = make_page(make_file(yanked="cassé ✗ \u2028"))
    body = render_project_json(page)
    body.decode("ascii")
    assert json_files(body)[0]["yanked"] == "cassé ✗ \u2028"


# --- Root pages -----------------------------------------------------------------------------


def test_index_html_relative_links_with_display_names():
    projects = ProjectList([("Foo.Bar", "foo-bar"), ("spam", "spam"), ("A&B<x>", "a-b-x")])
    text = render_index_html(projects).decode()
    assert '<meta name="pypi:repository-version" content="1.4">' in text
    assert '<a href="foo-bar/">Foo.Bar</a>' in text
    assert '<a href="spam/">spam</a>' in text
    assert '<a href="a-b-x/">A&amp;B&lt;x&gt;</a>' in text
    assert text.count("<a ") == 3


def test_index_json():
    projects = ProjectList([("Foo.Bar", "foo-bar"), ("spam", "spam")])
    assert json.loads(render_index_json(projects)) == {
        "meta": {"api-version": "1.4"},
        "projects": [{"name": "Foo.Bar"}, {"name": "spam"}],
    }


def test_empty_index():
    assert json.loads(render_index_json(ProjectList()))["projects"] == []
    assert "<a " not in render_index_html(ProjectList()).decode()


def test_large_page_renders_every_file():
    files = [make_file(f"1.{i}", requires_python=">=3.8") for i in range(2000)]
    page = make_page(*files)
    assert render_project_html(page).count(b"<a ") == 2000
    assert len(json_files(render_project_json(page))) == 2000


# --- ETags ----------------------------------------------------------------------------------


def test_etag_is_strong_quoted_and_stable():
    tag = etag_for(b"body")
    assert re.fullmatch(r'"[0-9a-f]{32}"', tag)
    assert etag_for(b"body") == tag
    assert etag_for(b"other") != tag


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("*", True),
        (" * ", True),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"nope", W/"abc"', True),
        ('"nope","abc"', True),
        ('"nope"', False),
        ("abc", False),  # unquoted is not an entity tag
        ('"ab"', False),
        ('"a,bc", "x"', False),
    ],
)
def test_if_none_match(header, expected):
    assert if_none_match_matches(header, '"abc"') is expected


def test_if_none_match_against_weak_etag():
    assert if_none_match_matches('"abc"', 'W/"abc"')


def test_rerender_after_a_change_reflects_it():
    # Per-file fragments are memoized; a changed file must still render its new state.
    before = make_file("1.0")
    after = make_file("1.0", yanked="oops")
    assert "data-yanked" not in render_project_html(make_page(before)).decode()
    assert 'data-yanked="oops"' in render_project_html(make_page(after)).decode()
    assert json_files(render_project_json(make_page(after)))[0]["yanked"] == "oops"
    assert json_files(render_project_json(make_page(before)))[0]["yanked"] is False
