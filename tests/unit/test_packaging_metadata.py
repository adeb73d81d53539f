"""Core metadata parsing: versions accepted and refused, the fields kept, UNKNOWN, encodings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging import metadata as metadata_module
from wheelyard.shared.packaging.metadata import (
    ParsedMetadata,
    check_metadata_version,
    parse_core_metadata,
)
from wheelyard.testing.dist_factory import metadata_text


def parse(text: str) -> ParsedMetadata:
    return parse_core_metadata(text.encode("utf-8"))


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"])
def test_known_metadata_versions_are_accepted(version: str) -> None:
    meta = parse(metadata_text("demo", "1.0", metadata_version=version))
    assert meta.metadata_version == version
    assert meta.warnings == []


def test_newer_minor_is_accepted_with_a_warning() -> None:
    meta = parse(metadata_text("demo", "1.0", metadata_version="2.9"))
    assert meta.metadata_version == "2.9"
    assert meta.warnings == ["Metadata-Version 2.9 is newer than this server knows (2.6)."]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("2.0", "2.0 was never standardised"),
        ("3.0", "unsupported Metadata-Version '3.0'"),
        ("1.3", "unsupported Metadata-Version '1.3'"),
        ("10.1", "unsupported"),
        ("two", "unsupported"),
        ("2.", "unsupported"),
        ("2.٣", "unsupported"),  # Arabic-Indic digit: isdigit() but not ASCII
    ],
)
def test_unsupported_metadata_versions_are_refused(version: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(metadata_text("demo", "1.0", metadata_version=version))


def test_missing_metadata_version_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'Metadata-Version' is required"):
        parse("Name: demo\nVersion: 1.0\n")
    with pytest.raises(InvalidInput, match="required"):
        check_metadata_version("")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Metadata-Version: 2.1\nVersion: 1.0\n", "'Name' is required"),
        ("Metadata-Version: 2.1\nName: demo\n", "'Version' is required"),
        ("Metadata-Version: 2.1\nName: de mo\nVersion: 1.0\n", "Invalid project name"),
        ("Metadata-Version: 2.1\nName: démo\nVersion: 1.0\n", "ASCII"),
        ("Metadata-Version: 2.1\nName: demo\nVersion: latest\n", "Invalid version"),
        (
            "Metadata-Version: 2.1\nName: demo\nName: other\nVersion: 1.0\n",
            "'Name' must appear exactly once",
        ),
        (
            "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nVersion: 2.0\n",
            "'Version' must appear exactly once",
        ),
        (
            "Metadata-Version: 2.1\nMetadata-Version: 2.2\nName: demo\nVersion: 1.0\n",
            "'Metadata-Version' must appear exactly once",
        ),
    ],
)
def test_name_and_version_are_required_and_valid(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(text)


def test_requires_python_must_be_a_specifier_set() -> None:
    meta = parse(metadata_text("demo", "1.0", requires_python=">=3.8, <4"))
    assert meta.requires_python == ">=3.8, <4"
    with pytest.raises(InvalidInput, match="'Requires-Python'"):
        parse(metadata_text("demo", "1.0", requires_python=">=3.x"))


def test_requires_dist_must_be_valid_requirements() -> None:
    meta = parse(
        metadata_text("demo", "1.0", requires_dist=["requests>=2", 'tomli; python_version<"3.11"'])
    )
    assert meta.requires_dist == ["requests>=2", 'tomli; python_version<"3.11"']
    with pytest.raises(InvalidInput, match="'Requires-Dist'"):
        parse(metadata_text("demo", "1.0", requires_dist=["requests >>= 2"]))


def test_summary_is_limited_to_512_characters_and_one_line() -> None:
    assert parse(metadata_text("demo", "1.0", summary="x" * 512)).summary == "x" * 512
    with pytest.raises(InvalidInput, match="longer than 512"):
        parse(metadata_text("demo", "1.0", summary="x" * 513))
    with pytest.raises(InvalidInput, match="single line"):
        parse(metadata_text("demo", "1.0", summary="first\n second"))


def test_name_and_version_keep_their_spelling_and_normalize() -> None:
    meta = parse(metadata_text("Foo.Bar", "01.0-post1"))
    assert (meta.name, meta.normalized_name) == ("Foo.Bar", "foo-bar")
    assert (meta.version, meta.normalized_version) == ("01.0-post1", "1.0.post1")


def test_every_field_is_kept() -> None:
    text = metadata_text(
        "demo",
        "1.0",
        metadata_version="2.4",
        summary="Short",
        requires_python=">=3.9",
        requires_dist=["idna", "pytest; extra == 'test'"],
        extra_headers=[
            ("Description-Content-Type", "text/markdown"),
            ("Keywords", "a, b,c"),
            ("Home-page", "https://example.test"),
            ("Download-URL", "https://example.test/dl"),
            ("Author", "Ann"),
            ("Author-email", "ann@example.test"),
            ("Maintainer", "Bob"),
            ("Maintainer-email", "bob@example.test"),
            ("License", "MIT text"),
            ("License-Expression", "MIT"),
            ("License-File", "LICENSE"),
            ("License-File", "NOTICE"),
            ("Classifier", "Programming Language :: Python"),
            ("Classifier", "License :: OSI Approved"),
            ("Requires-External", "libpq"),
            ("Provides-Extra", "test"),
            ("Provides-Dist", "demo_alias"),
            ("Obsoletes-Dist", "olddemo"),
            ("Project-URL", "Source, https://example.test/src"),
            ("Project-URL", "Docs, https://example.test/docs"),
            ("Platform", "linux"),
            ("Supported-Platform", "linux-x86_64"),
            ("Dynamic", "Classifier"),
            ("X-Unknown-Field", "ignored"),
        ],
        description="# Demo\n\nLong text.\n",
    )
    meta = parse(text)
    assert meta.description == "# Demo\n\nLong text.\n"
    assert meta.description_content_type == "text/markdown"
    assert meta.keywords == ["a", "b", "c"]
    assert meta.home_page == "https://example.test"
    assert meta.download_url == "https://example.test/dl"
    assert (meta.author, meta.author_email) == ("Ann", "ann@example.test")
    assert (meta.maintainer, meta.maintainer_email) == ("Bob", "bob@example.test")
    assert (meta.license, meta.license_expression) == ("MIT text", "MIT")
    assert meta.license_files == ["LICENSE", "NOTICE"]
    assert meta.classifiers == ["Programming Language :: Python", "License :: OSI Approved"]
    assert meta.requires_external == ["libpq"]
    assert meta.provides_extra == ["test"]
    assert meta.provides_dist == ["demo_alias"]
    assert meta.obsoletes_dist == ["olddemo"]
    assert meta.project_urls == {
        "Source": "https://example.test/src",
        "Docs": "https://example.test/docs",
    }
    assert meta.platforms == ["linux"]
    assert meta.supported_platforms == ["linux-x86_64"]
    assert meta.dynamic == ["Classifier"]
    assert meta.import_names is None
    assert meta.import_namespaces is None


def test_as_json_is_json_serializable_and_complete() -> None:
    meta = parse(
        metadata_text(
            "demo",
            "1.0",
            metadata_version="2.5",
            extra_headers=[("Project-URL", "Home, https://x.test"), ("Import-Name", "demo")],
        )
    )
    data = meta.as_json()
    assert json.loads(json.dumps(data)) == data
    assert data["name"] == "demo"
    assert data["project_urls"] == {"Home": "https://x.test"}
    assert data["import_names"] == ["demo"]
    assert set(data) >= {
        "metadata_version",
        "normalized_version",
        "requires_dist",
        "license_files",
        "dynamic",
        "import_namespaces",
    }


def test_import_name_and_namespace_from_metadata_2_5() -> None:
    meta = parse(
        metadata_text(
            "demo",
            "1.0",
            metadata_version="2.5",
            extra_headers=[
                ("Import-Name", "demo"),
                ("Import-Name", "demo.plugins; private"),
                ("Import-Namespace", "corp"),
            ],
        )
    )
    assert meta.import_names == ["demo", "demo.plugins; private"]
    assert meta.import_namespaces == ["corp"]


def test_empty_import_name_means_no_import_names() -> None:
    meta = parse(
        metadata_text("demo", "1.0", metadata_version="2.5", extra_headers=[("Import-Name", "")])
    )
    assert meta.import_names == []


def test_import_name_in_older_metadata_is_tolerated() -> None:
    meta = parse(metadata_text("demo", "1.0", extra_headers=[("Import-Name", "demo")]))
    assert meta.import_names == ["demo"]


def test_import_name_when_packaging_does_not_know_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # An older `packaging` leaves PEP 794 fields in `unparsed`; they must still be read.
    real_parse_email = metadata_module.parse_email

    def old_parse_email(data: str) -> tuple[Any, dict[str, list[str]]]:
        raw, unparsed = real_parse_email(data)
        for key, header in (
            ("import_names", "import-name"),
            ("import_namespaces", "import-namespace"),
        ):
            if key in raw:
                unparsed[header] = raw.pop(key) or [""]  # type: ignore[misc]
        return raw, unparsed

    monkeypatch.setattr(metadata_module, "parse_email", old_parse_email)
    meta = parse(
        metadata_text(
            "demo",
            "1.0",
            metadata_version="2.5",
            extra_headers=[("Import-Name", "demo"), ("Import-Namespace", "corp")],
        )
    )
    assert (meta.import_names, meta.import_namespaces) == (["demo"], ["corp"])


def test_unknown_values_are_dropped_like_pypi() -> None:
    meta = parse(
        metadata_text(
            "demo",
            "1.0",
            metadata_version="1.0",
            summary="UNKNOWN",
            extra_headers=[
                ("Home-page", "UNKNOWN"),
                ("Author", "UNKNOWN"),
                ("Author-email", "UNKNOWN"),
                ("License", "UNKNOWN"),
                ("Keywords", "UNKNOWN"),
                ("Platform", "UNKNOWN"),
                ("Classifier", "UNKNOWN"),
                ("Classifier", "Topic :: Utilities"),
                ("Project-URL", "Home, UNKNOWN"),
            ],
            description="UNKNOWN",
        )
    )
    assert meta.summary is None
    assert meta.description is None
    assert meta.home_page is None
    assert meta.author is None
    assert meta.author_email is None
    assert meta.license is None
    assert meta.keywords == []
    assert meta.platforms == []
    assert meta.classifiers == ["Topic :: Utilities"]
    assert meta.project_urls == {}


def test_non_utf8_metadata_is_refused() -> None:
    raw = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: Jürgen\n".encode("latin-1")
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        parse_core_metadata(raw)


def test_utf8_values_and_bom_are_read() -> None:
    raw = "\ufeffMetadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: Jürgen\n".encode()
    meta = parse_core_metadata(raw)
    assert meta.author == "Jürgen"


def test_crlf_metadata_is_read() -> None:
    meta = parse(metadata_text("demo", "1.0", newline="\r\n", summary="CRLF"))
    assert (meta.name, meta.version, meta.summary) == ("demo", "1.0", "CRLF")


def test_description_in_header_and_body_keeps_the_body_with_a_warning() -> None:
    meta = parse(
        metadata_text(
            "demo", "1.0", extra_headers=[("Description", "header")], description="body\n"
        )
    )
    assert meta.description == "body\n"
    assert any("Description" in w for w in meta.warnings)


def test_repeated_project_url_labels_are_ignored_with_a_warning() -> None:
    meta = parse(
        metadata_text(
            "demo",
            "1.0",
            extra_headers=[("Project-URL", "Home, https://a.test"), ("Project-URL", "Home, x")],
        )
    )
    assert meta.project_urls == {}
    assert any("Project-URL" in w for w in meta.warnings)


@pytest.mark.parametrize("field", ["Name", "Version", "Metadata-Version"])
def test_name_and_version_cannot_be_dynamic(field: str) -> None:
    with pytest.raises(InvalidInput, match="must not be Dynamic"):
        parse(
            metadata_text("demo", "1.0", metadata_version="2.2", extra_headers=[("Dynamic", field)])
        )


def test_markup_in_text_fields_is_kept_as_data() -> None:
    meta = parse(metadata_text("demo", "1.0", summary="<script>alert(1)</script>"))
    assert meta.summary == "<script>alert(1)</script>"
