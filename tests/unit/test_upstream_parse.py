"""Parsing and sanitizing upstream simple pages for the proxy: PEP 503 HTML and PEP 691 JSON in,
only validated values out (docs/standards.md §9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from wheelyard.shared.errors import UpstreamError
from wheelyard.shared.packaging.simple.model import HTML_V1, JSON_V1, ProjectPage, SimpleFile
from wheelyard.shared.packaging.simple.render_html import render_project_html
from wheelyard.shared.packaging.simple.render_json import render_project_json
from wheelyard.shared.packaging.simple.upstream import parse_upstream_page

BASE = "https://upstream.example/simple/foo-bar/"
SHA = "ab" * 32
META = "cd" * 32
HTML_CT = "text/html; charset=utf-8"


def json_body(*files: dict, **extra) -> bytes:
    data = {"meta": {"api-version": "1.4"}, "name": "foo-bar", "files": list(files)}
    data.update(extra)
    return json.dumps(data).encode()


def json_file(filename: str = "foo_bar-1.0-py3-none-any.whl", **extra) -> dict:
    entry = {
        "filename": filename,
        "url": f"https://files.example/packages/{filename}",
        "hashes": {"sha256": SHA},
    }
    entry.update(extra)
    return entry


def html_body(*anchors: str, head: str = "") -> bytes:
    return (
        "<!DOCTYPE html><html><head>"
        '<meta name="pypi:repository-version" content="1.4">'
        f"{head}</head><body>{''.join(anchors)}</body></html>"
    ).encode()


def parse_html(*anchors: str, head: str = "", base: str = BASE) -> ProjectPage:
    return parse_upstream_page(html_body(*anchors, head=head), HTML_CT, base)


def parse_json(*files: dict, **extra) -> ProjectPage:
    return parse_upstream_page(json_body(*files, **extra), JSON_V1, BASE)


# --- JSON upstream --------------------------------------------------------------------------


def test_json_page_keeps_every_field():
    page = parse_json(
        json_file(
            "foo_bar-1.0-py3-none-any.whl",
            **{
                "requires-python": ">=3.8,<4",
                "core-metadata": {"sha256": META},
                "yanked": "broken",
                "size": 1110,
                "upload-time": "2026-01-01T12:00:00.123456Z",
            },
        ),
        json_file("foo_bar-1.1.tar.gz", size=20),
        versions=["1.0", "1.1", "0.9"],
    )
    assert page.name == "foo-bar"
    assert page.versions == ["0.9", "1.0", "1.1"]
    assert page.status is None
    first, second = page.files
    assert first == SimpleFile(
        filename="foo_bar-1.0-py3-none-any.whl",
        url="https://files.example/packages/foo_bar-1.0-py3-none-any.whl",
        sha256=SHA,
        size=1110,
        upload_time=datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        requires_python=">=3.8,<4",
        yanked="broken",
        core_metadata_sha256=META,
        has_core_metadata=True,
        upstream_url="https://files.example/packages/foo_bar-1.0-py3-none-any.whl",
    )
    assert second.yanked is False
    assert second.has_core_metadata is False and second.core_metadata_sha256 is None
    assert second.requires_python is None and second.upload_time is None


def test_json_relative_urls_become_absolute_and_fragments_are_dropped():
    page = parse_json(json_file(url="../../packages/foo_bar-1.0-py3-none-any.whl#sha256=" + SHA))
    (f,) = page.files
    assert (
        f.url == f.upstream_url == "https://upstream.example/packages/foo_bar-1.0-py3-none-any.whl"
    )


def test_json_yanked_true_and_empty_reason():
    page = parse_json(
        json_file("foo_bar-1.0.tar.gz", yanked=True),
        json_file("foo_bar-1.1.tar.gz", yanked=""),
        json_file("foo_bar-1.2.tar.gz", yanked=False),
    )
    assert [f.yanked for f in page.files] == [True, True, False]


def test_json_core_metadata_true_is_kept_as_marker():
    page = parse_json(
        json_file("foo_bar-1.0.tar.gz", **{"core-metadata": True}),
        json_file("foo_bar-1.1.tar.gz", **{"core-metadata": {"sha512": "00" * 64}}),
        json_file("foo_bar-1.2.tar.gz", **{"core-metadata": False}),
    )
    assert [(f.has_core_metadata, f.core_metadata_sha256) for f in page.files] == [
        (True, None),
        (True, None),
        (False, None),
    ]


def test_json_legacy_dist_info_metadata_key_is_understood():
    page = parse_json(json_file(**{"dist-info-metadata": {"sha256": META}}))
    assert page.files[0].core_metadata_sha256 == META
    page = parse_json(json_file(**{"data-dist-info-metadata": {"sha256": META}}))
    assert page.files[0].core_metadata_sha256 == META


def test_json_only_sha256_survives():
    page = parse_json(
        json_file("foo_bar-1.0.tar.gz", hashes={"sha1": "aa" * 20}),
        json_file("foo_bar-1.1.tar.gz", hashes={"md5": "aa" * 16, "sha256": SHA.upper()}),
        json_file("foo_bar-1.2.tar.gz", hashes={"sha256": "not-hex"}),
        json_file("foo_bar-1.3.tar.gz", hashes={}),
    )
    assert [f.sha256 for f in page.files] == [None, SHA, None, None]
    # Rendered again, a hash-less file has no fragment and an empty hashes object.
    html = render_project_html(page).decode()
    assert "sha1" not in html and "md5" not in html
    assert json.loads(render_project_json(page))["files"][0]["hashes"] == {}


def test_json_versions_include_file_versions():
    page = parse_json(json_file("foo_bar-2.0-py3-none-any.whl"), versions=["1.0"])
    assert page.versions == ["1.0", "2.0"]


def test_json_project_status_and_quarantine():
    page = parse_json(
        json_file(), **{"project-status": {"status": "archived", "reason": "done\x00 here"}}
    )
    assert page.status == "archived" and page.status_reason == "done here"
    assert len(page.files) == 1
    page = parse_json(json_file(), **{"project-status": {"status": "quarantined"}})
    assert page.status == "quarantined"
    assert page.files == []


def test_json_unknown_status_is_ignored():
    page = parse_json(json_file(), **{"project-status": {"status": "frozen"}})
    assert page.status is None and len(page.files) == 1


def test_json_name_is_normalized():
    body = json_body(json_file(), name="Foo_Bar")
    assert parse_upstream_page(body, JSON_V1, BASE).name == "foo-bar"


def test_json_negative_size_is_dropped():
    assert parse_json(json_file(size=-5)).files[0].size is None


def test_json_upload_time_with_offset_becomes_utc():
    page = parse_json(json_file(**{"upload-time": "2026-01-01T14:00:00+02:00"}))
    assert page.files[0].upload_time == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_json_newer_minor_api_version_is_accepted():
    body = json.dumps(
        {"meta": {"api-version": "1.9"}, "name": "foo-bar", "files": [json_file()]}
    ).encode()
    assert len(parse_upstream_page(body, JSON_V1, BASE).files) == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", JSON_V1),
        (b"[]", JSON_V1),
        (b'{"meta": {"api-version": "2.0"}, "name": "x", "files": []}', JSON_V1),
        (b'{"meta": {"api-version": "1.0"}, "name": "x", "files": [{"filename": 1}]}', JSON_V1),
        (b"{}", "application/json"),
        (b"<html></html>", "text/plain"),
        (b'<html><head><meta name="pypi:repository-version" content="2.0"></head></html>', HTML_CT),
    ],
)
def test_bad_pages_raise_upstream_error(body, content_type):
    with pytest.raises(UpstreamError):
        parse_upstream_page(body, content_type, BASE)


# --- HTML upstream --------------------------------------------------------------------------


def test_html_page_keeps_every_field():
    page = parse_html(
        f'<a href="/files/foo_bar-1.0-py3-none-any.whl#sha256={SHA}" '
        'data-requires-python="&gt;=3.8,&lt;4" '
        f'data-core-metadata="sha256={META}" data-yanked="old &amp; broken">'
        "foo_bar-1.0-py3-none-any.whl</a>",
        f'<a href="../../files/foo_bar-1.1.tar.gz#sha256={SHA}">foo_bar-1.1.tar.gz</a>',
    )
    assert page.name == "foo-bar"
    assert page.versions == ["1.0", "1.1"]
    first, second = page.files
    assert first.filename == "foo_bar-1.0-py3-none-any.whl"
    assert first.url == "https://upstream.example/files/foo_bar-1.0-py3-none-any.whl"
    assert first.upstream_url == first.url
    assert first.sha256 == SHA
    assert first.requires_python == ">=3.8,<4"
    assert first.core_metadata_sha256 == META and first.has_core_metadata
    assert first.yanked == "old & broken"
    assert first.size is None and first.upload_time is None
    assert second.url == "https://upstream.example/files/foo_bar-1.1.tar.gz"
    assert second.yanked is False


def test_html_bare_and_empty_yanked_are_yanked_without_reason():
    page = parse_html(
        '<a href="a/foo_bar-1.0.tar.gz" data-yanked>foo_bar-1.0.tar.gz</a>',
        '<a href="a/foo_bar-1.1.tar.gz" data-yanked="">foo_bar-1.1.tar.gz</a>',
    )
    assert [f.yanked for f in page.files] == [True, True]


def test_html_legacy_dist_info_metadata_attribute_is_understood():
    page = parse_html(
        f'<a href="a/foo_bar-1.0.tar.gz" data-dist-info-metadata="sha256={META}">'
        "foo_bar-1.0.tar.gz</a>",
        '<a href="a/foo_bar-1.1.tar.gz" data-dist-info-metadata="true">foo_bar-1.1.tar.gz</a>',
        '<a href="a/foo_bar-1.2.tar.gz" data-core-metadata="true">foo_bar-1.2.tar.gz</a>',
    )
    assert [(f.has_core_metadata, f.core_metadata_sha256) for f in page.files] == [
        (True, META),
        (True, None),
        (True, None),
    ]


def test_html_base_href_is_honoured():
    page = parse_html(
        '<a href="foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        head='<base href="https://mirror.example/pkgs/">',
    )
    assert page.files[0].url == "https://mirror.example/pkgs/foo_bar-1.0.tar.gz"


def test_html_project_status_meta():
    page = parse_html(
        '<a href="a/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        head='<meta name="pypi:project-status" content="deprecated">'
        '<meta name="pypi:project-status-reason" content="use baz">',
    )
    assert (page.status, page.status_reason) == ("deprecated", "use baz")
    page = parse_html(
        '<a href="a/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        head='<meta name="pypi:project-status" content="quarantined">',
    )
    assert page.status == "quarantined" and page.files == []
    page = parse_html(
        '<a href="a/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        head='<meta name="pypi:project-status" content="bogus">',
    )
    assert page.status is None and len(page.files) == 1


def test_html_name_comes_from_url_or_argument():
    body = html_body('<a href="a/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>')
    assert parse_upstream_page(body, HTML_V1, "https://u.example/simple/Foo.Bar/").name == (
        "foo-bar"
    )
    assert parse_upstream_page(body, HTML_V1, BASE, project="Other_Name").name == "other-name"


def test_html_charset_from_content_type():
    body = html_body('<a href="a/foo_bar-1.0.tar.gz" data-yanked="caf\xe9">foo_bar-1.0.tar.gz</a>')
    latin1 = body.decode().encode("latin-1")
    page = parse_upstream_page(latin1, "text/html; charset=ISO-8859-1", BASE)
    assert page.files[0].yanked == "café"


# --- Percent-encoded filenames --------------------------------------------------------------


def test_percent_encoded_plus_in_url_decodes_to_plus():
    filename = "torch-2.1.0+cu121-cp311-cp311-linux_x86_64.whl"
    page = parse_upstream_page(
        html_body(
            f'<a href="/whl/cu121/torch-2.1.0%2Bcu121-cp311-cp311-linux_x86_64.whl#sha256={SHA}">'
            f"{filename}</a>"
        ),
        HTML_CT,
        "https://download.example/whl/cu121/torch/",
    )
    (f,) = page.files
    assert f.filename == filename
    assert f.upstream_url.endswith("torch-2.1.0%2Bcu121-cp311-cp311-linux_x86_64.whl")
    assert page.name == "torch"
    assert page.versions == ["2.1.0+cu121"]


def test_percent_encoded_anchor_text_is_decoded():
    page = parse_html(
        '<a href="/x/foo_bar-1.0%2Blocal-py3-none-any.whl">foo_bar-1.0%2Blocal-py3-none-any.whl</a>'
    )
    assert page.files[0].filename == "foo_bar-1.0+local-py3-none-any.whl"


def test_json_percent_encoded_url_with_plain_filename():
    page = parse_json(
        json_file(
            "foo_bar-1.0+cpu-py3-none-any.whl",
            url="https://files.example/foo_bar-1.0%2Bcpu-py3-none-any.whl",
        )
    )
    assert page.files[0].filename == "foo_bar-1.0+cpu-py3-none-any.whl"


def test_filename_taken_from_url_when_anchor_text_is_not_a_filename():
    page = parse_html('<a href="/f/foo_bar-1.0.tar.gz">download</a>')
    assert page.files[0].filename == "foo_bar-1.0.tar.gz"


def test_filename_taken_from_text_when_url_has_no_filename():
    page = parse_html('<a href="/download?id=1">foo_bar-1.0.tar.gz</a>')
    (f,) = page.files
    assert f.filename == "foo_bar-1.0.tar.gz"
    assert f.upstream_url == "https://upstream.example/download?id=1"


def test_anchor_text_disagreeing_with_url_is_dropped():
    page = parse_html('<a href="/f/evil-6.6.tar.gz">foo_bar-1.0.tar.gz</a>')
    assert page.files == []


# --- Malicious upstream pages ---------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor",
    [
        '<a href="javascript:alert(1)//foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        '<a href="JavaScript:alert(1)">foo_bar-1.0.tar.gz</a>',
        '<a href="file:///etc/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        '<a href="data:text/html,foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        '<a href="ftp://h/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
        '<a href="/f/../foo_bar-1.0.tar.gz/..">..</a>',
        '<a href="/f/..%2F..%2Fetc%2Fpasswd.tar.gz">../../etc/passwd.tar.gz</a>',
        '<a href="/f/x">../foo_bar-1.0.tar.gz</a>',
        '<a href="/f/x">..\\foo_bar-1.0.tar.gz</a>',
        '<a href="/f/x">.hidden-1.0.tar.gz</a>',
        '<a href="/f/x">foo_bar-1.0.exe</a>',
        '<a href="/f/x">foo_bar-1.0.egg</a>',
        '<a href="/f/x">foo_bar-1.0.tar.bz2</a>',
        '<a href="/f/foo%00bar-1.0.tar.gz">foo%00bar-1.0.tar.gz</a>',
        '<a href="/f/x">foo bar-1.0.tar.gz</a>',
        '<a href="/f/x">foo"bar-1.0.tar.gz</a>',
        '<a href="/f/x">&lt;script&gt;-1.0.tar.gz</a>',
        '<a href="/f/x">' + "a" * 300 + "-1.0.tar.gz</a>",
        '<a href="/f/foo_bar-1.0.tar.gz\x01">foo_bar-1.0.tar.gz</a>',
        '<a href="http:///foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
    ],
)
def test_malicious_links_are_dropped(anchor):
    assert parse_html(anchor).files == []


def test_script_in_attributes_never_survives_a_render():
    page = parse_html(
        '<a href="/f/foo_bar-1.0.tar.gz" '
        'data-requires-python="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" '
        'data-yanked="&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" '
        'data-core-metadata="&quot;&gt;&lt;script&gt;">foo_bar-1.0.tar.gz</a>',
        '<a href="/f/foo_bar-1.1.tar.gz"><script>alert(3)</script>foo_bar-1.1.tar.gz</a>',
    )
    first = page.files[0]
    assert first.requires_python is None  # not a valid specifier
    assert first.yanked == '"><script>alert(2)</script>'  # kept as data ...
    assert first.core_metadata_sha256 is None
    html = render_project_html(page).decode()
    assert "<script>" not in html  # ... and escaped on the way out
    assert html.count("<a ") == len(page.files)


def test_sha1_only_hashes_are_dropped_not_forwarded():
    page = parse_html(
        '<a href="/f/foo_bar-1.0.tar.gz#sha1=' + "aa" * 20 + '">foo_bar-1.0.tar.gz</a>',
        '<a href="/f/foo_bar-1.1.tar.gz#md5=' + "bb" * 16 + '">foo_bar-1.1.tar.gz</a>',
    )
    assert [f.sha256 for f in page.files] == [None, None]
    html = render_project_html(page).decode()
    assert "#sha1" not in html and "#md5" not in html and "#" not in html


def test_invalid_requires_python_is_dropped():
    page = parse_html(
        '<a href="/f/foo_bar-1.0.tar.gz" data-requires-python="banana">foo_bar-1.0.tar.gz</a>'
    )
    assert page.files[0].requires_python is None


def test_control_characters_in_yank_reason_are_removed():
    page = parse_json(json_file(yanked="bad\x1b[31m\x07 thing"))
    assert page.files[0].yanked == "bad[31m thing"


def test_non_file_links_are_skipped():
    page = parse_html(
        '<a href="../">Up</a>',
        '<a href="https://example.com/">home</a>',
        '<a name="anchor">no href</a>',
        '<a href="/f/foo_bar-1.0.tar.gz">foo_bar-1.0.tar.gz</a>',
    )
    assert [f.filename for f in page.files] == ["foo_bar-1.0.tar.gz"]


# --- Round trip through our own renderers ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_render_then_parse_round_trip(fmt):
    original = ProjectPage(
        name="foo-bar",
        files=[
            SimpleFile(
                filename="foo_bar-1.0-py3-none-any.whl",
                url="https://files.example/foo_bar-1.0-py3-none-any.whl",
                sha256=SHA,
                size=10,
                upload_time=datetime(2026, 1, 1, tzinfo=UTC),
                requires_python=">=3.8,<4",
                yanked="reason <x>",
                core_metadata_sha256=META,
            ),
            SimpleFile(
                filename="foo_bar-1.1.tar.gz",
                url="https://files.example/foo_bar-1.1.tar.gz",
                sha256=SHA,
                size=20,
                yanked=True,
            ),
        ],
        versions=["1.0", "1.1"],
        status="archived",
        status_reason="kept for reference",
    )
    if fmt == "html":
        body, ct = render_project_html(original), HTML_CT
    else:
        body, ct = render_project_json(original), JSON_V1
    parsed = parse_upstream_page(body, ct, BASE)
    assert parsed.status == "archived" and parsed.status_reason == "kept for reference"
    assert parsed.versions == ["1.0", "1.1"]
    for want, got in zip(original.files, parsed.files, strict=True):
        assert got.filename == want.filename
        assert got.sha256 == want.sha256
        assert got.requires_python == want.requires_python
        assert got.yanked == want.yanked
        assert got.core_metadata_sha256 == want.core_metadata_sha256
        assert got.upstream_url == want.url
        if fmt == "json":
            assert got.size == want.size and got.upload_time == want.upload_time
