"""The legacy upload form's non-file fields, as PyPI's upload API reads them and with PyPI's
messages (warehouse's forklift/legacy.py; docs/standards.md §7)."""

from __future__ import annotations

import hashlib
import re

import pytest

from wheelyard.shared.errors import Gone, InvalidInput
from wheelyard.shared.packaging.form import (
    UploadForm,
    parse_upload_form_fields,
    verify_digests,
)

CONTENT = b"wheel bytes"
SHA256 = hashlib.sha256(CONTENT).hexdigest()
BLAKE2 = hashlib.blake2b(CONTENT, digest_size=32).hexdigest()
MD5 = hashlib.md5(CONTENT).hexdigest()
DIGEST_MISMATCH = "The digest supplied does not match a digest calculated from the uploaded file."


def form_fields(**overrides: list[str] | None) -> dict[str, list[str]]:
    """A valid twine-like wheel upload; `None` removes a field."""
    fields: dict[str, list[str] | None] = {
        ":action": ["file_upload"],
        "protocol_version": ["1"],
        "name": ["demo"],
        "version": ["1.0"],
        "filetype": ["bdist_wheel"],
        "pyversion": ["py3"],
        "metadata_version": ["2.1"],
        "sha256_digest": [SHA256],
        "blake2_256_digest": [BLAKE2],
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


def test_a_valid_wheel_form_parses() -> None:
    form = parse_upload_form_fields(form_fields())
    assert isinstance(form, UploadForm)
    assert (form.name, form.version, form.filetype, form.pyversion) == (
        "demo",
        "1.0",
        "bdist_wheel",
        "py3",
    )
    assert form.digests == {"sha256": SHA256, "blake2_256": BLAKE2}
    assert form.md5_digest is None
    assert form.metadata_version == "2.1"


@pytest.mark.parametrize("action", ["submit", "submit_pkg_info"])
def test_register_actions_are_gone(action: str) -> None:
    with pytest.raises(Gone, match="pre-registration is no longer required"):
        parse_upload_form_fields(form_fields(**{":action": [action]}))


def test_doc_upload_is_gone() -> None:
    with pytest.raises(Gone, match="Uploading documentation is no longer supported"):
        parse_upload_form_fields(form_fields(**{":action": ["doc_upload"]}))


@pytest.mark.parametrize("action", [None, ["list_classifiers"], ["file_upload", "submit"]])
def test_other_actions_are_invalid(action: list[str] | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_upload_form_fields(form_fields(**{":action": action}))
    # Poetry would answer a 400 containing this phrase by calling `submit`.
    assert "was ever registered" not in caught.value.message


def test_protocol_version_absent_is_one_and_others_are_refused() -> None:
    assert parse_upload_form_fields(form_fields(protocol_version=None)).protocol_version == "1"
    with pytest.raises(InvalidInput, match=r"^Unknown protocol version\.$"):
        parse_upload_form_fields(form_fields(protocol_version=["2"]))


@pytest.mark.parametrize("filetype", ["bdist_egg", "bdist_wininst", "bdist_dumb", "whl", ""])
def test_unknown_filetypes_are_refused(filetype: str) -> None:
    with pytest.raises(InvalidInput, match="filetype"):
        parse_upload_form_fields(form_fields(filetype=[filetype]))


def test_filetype_is_required() -> None:
    with pytest.raises(InvalidInput, match="filetype"):
        parse_upload_form_fields(form_fields(filetype=None))


def test_wheel_needs_a_pyversion() -> None:
    with pytest.raises(InvalidInput, match=r"^Python version is required for binary"):
        parse_upload_form_fields(form_fields(pyversion=None))
    with pytest.raises(InvalidInput, match=r"^Python version is required for binary"):
        parse_upload_form_fields(form_fields(pyversion=[""]))


def test_sdist_pyversion_is_source() -> None:
    sdist = {"filetype": ["sdist"]}
    assert parse_upload_form_fields(form_fields(**sdist, pyversion=None)).pyversion == "source"
    assert (
        parse_upload_form_fields(form_fields(**sdist, pyversion=["source"])).pyversion == "source"
    )
    with pytest.raises(InvalidInput, match=r"^Use 'source' as Python version for an sdist\.$"):
        parse_upload_form_fields(form_fields(**sdist, pyversion=["py3"]))


def test_at_least_one_digest_is_required() -> None:
    with pytest.raises(InvalidInput, match=r"^Include at least one message digest\.$"):
        parse_upload_form_fields(form_fields(sha256_digest=None, blake2_256_digest=None))
    # Empty strings count as absent.
    with pytest.raises(InvalidInput, match=r"^Include at least one message digest\.$"):
        parse_upload_form_fields(form_fields(sha256_digest=[""], blake2_256_digest=[""]))


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("sha256_digest", "abc", "SHA256"),
        ("sha256_digest", "g" * 64, "SHA256"),
        ("sha256_digest", "a" * 63 + "\n", "SHA256"),
        ("blake2_256_digest", "a" * 128, "BLAKE2"),
        ("md5_digest", "a" * 31, "MD5"),
        ("md5_digest", "z" * 32, "MD5"),
    ],
)
def test_malformed_digests_are_refused(field: str, value: str, label: str) -> None:
    with pytest.raises(InvalidInput, match=f"hex-encoded, {label} message digest"):
        parse_upload_form_fields(form_fields(**{field: [value]}))


def test_digests_are_lowercased_and_md5_alone_is_enough() -> None:
    form = parse_upload_form_fields(
        form_fields(sha256_digest=None, blake2_256_digest=None, md5_digest=[MD5.upper()])
    )
    assert form.digests == {"md5": MD5}


@pytest.mark.parametrize("field", ["name", "version"])
def test_name_and_version_are_required(field: str) -> None:
    with pytest.raises(
        InvalidInput, match=f"Invalid value for {field}. Error: This field is required."
    ):
        parse_upload_form_fields(form_fields(**{field: None}))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "<img src=x onerror=alert(1)>", "Invalid project name"),
        ("name", "p\u0430ckage", "ASCII"),
        ("version", " 1.0", "whitespace"),
        ("version", "1.0 ", "whitespace"),
        ("version", "not-a-version", "Invalid version"),
    ],
)
def test_invalid_name_and_version_are_refused(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_upload_form_fields(form_fields(**{field: [value]}))


def test_conflicting_repeats_of_a_control_field_are_refused() -> None:
    with pytest.raises(InvalidInput, match="'version' was sent more than once"):
        parse_upload_form_fields(form_fields(version=["1.0", "1.1"]))
    # Identical repeats are harmless.
    assert parse_upload_form_fields(form_fields(version=["1.0", "1.0"])).version == "1.0"


def test_metadata_version_2_0_is_refused_and_newer_minor_warns() -> None:
    with pytest.raises(InvalidInput, match=r"2\.0 was never standardised"):
        parse_upload_form_fields(form_fields(metadata_version=["2.0"]))
    form = parse_upload_form_fields(form_fields(metadata_version=["2.8"]))
    assert form.warnings


def test_metadata_version_is_optional() -> None:
    assert parse_upload_form_fields(form_fields(metadata_version=None)).metadata_version is None


@pytest.mark.parametrize("spelling", ["import_name", "import_names"])
def test_metadata_2_5_import_names_in_both_spellings(spelling: str) -> None:
    form = parse_upload_form_fields(
        form_fields(
            metadata_version=["2.5"],
            **{spelling: ["demo", "demo.plugins; private"]},
            **{spelling.replace("name", "namespace"): ["corp"]},
        )
    )
    assert form.import_names == ["demo", "demo.plugins; private"]
    assert form.import_namespaces == ["corp"]


def test_import_names_absent_is_none_and_both_spellings_merge() -> None:
    assert parse_upload_form_fields(form_fields()).import_names is None
    assert parse_upload_form_fields(form_fields(import_names=[""])).import_names is None
    form = parse_upload_form_fields(form_fields(import_name=["a", "b"], import_names=["b", "c"]))
    assert form.import_names == ["a", "b", "c"]


def test_every_client_spelling_of_list_fields_is_accepted() -> None:
    form = parse_upload_form_fields(
        form_fields(
            classifier=["A :: B"],
            classifiers=["C :: D"],
            provides_extras=["test"],  # pdm
            provides_extra=["docs"],
            license_file=["LICENSE"],  # hatch
            license_files=["NOTICE"],
            project_url=["Home, https://h.test"],
            project_urls=["Docs, https://d.test"],
            platform=["linux"],
            supported_platform=["linux-x86_64"],
            requires_dist=["idna", "requests>=2"],
            requires_external=["libpq"],
            provides_dist=["x"],
            obsoletes_dist=["y"],
            dynamic=["Classifier"],
        )
    )
    assert form.classifiers == ["C :: D", "A :: B"]
    assert form.provides_extra == ["docs", "test"]
    assert form.license_files == ["LICENSE", "NOTICE"]
    assert form.project_urls == ["Docs, https://d.test", "Home, https://h.test"]
    assert form.platforms == ["linux"]
    assert form.supported_platforms == ["linux-x86_64"]
    assert form.requires_dist == ["idna", "requests>=2"]
    assert (form.requires_external, form.provides_dist, form.obsoletes_dist) == (
        ["libpq"],
        ["x"],
        ["y"],
    )
    assert form.dynamic == ["Classifier"]


def test_requires_python_as_string_empty_or_list() -> None:
    assert (
        parse_upload_form_fields(form_fields(requires_python=[">=3.9"])).requires_python == ">=3.9"
    )
    # uv always sends it, possibly empty.
    assert parse_upload_form_fields(form_fields(requires_python=[""])).requires_python is None
    # pdm sends a list.
    form = parse_upload_form_fields(form_fields(requires_python=[">=3.9", "<4"]))
    assert form.requires_python == ">=3.9, <4"
    with pytest.raises(InvalidInput, match="requires_python"):
        parse_upload_form_fields(form_fields(requires_python=[">=three"]))


def test_text_fields_unknown_and_nul_handling() -> None:
    form = parse_upload_form_fields(
        form_fields(
            summary=["UNKNOWN"],
            home_page=["UNKNOWN"],
            author=["Ann\x00"],
            description=["# Title"],
            keywords=["a, b"],
            classifiers=["UNKNOWN", "Topic :: Utilities"],
            comment=["hi"],
            attestations=["[]"],
            unknown_field=["ignored"],
        )
    )
    assert form.summary is None
    assert form.home_page is None
    assert form.author == "Ann\\x00"
    assert form.description == "# Title"
    assert form.keywords == "a, b"
    assert form.classifiers == ["Topic :: Utilities"]
    assert (form.comment, form.attestations) == ("hi", "[]")


def test_keywords_as_one_string_or_repeated_parts() -> None:
    assert parse_upload_form_fields(form_fields(keywords=["a,b"])).keywords == "a,b"
    assert parse_upload_form_fields(form_fields(keywords=["a", "b"])).keywords == "a, b"


def test_unknown_name_is_deleted_like_pypi_then_required() -> None:
    with pytest.raises(InvalidInput, match=r"name\. Error: This field is required"):
        parse_upload_form_fields(form_fields(name=["UNKNOWN"]))


class TestVerifyDigests:
    def test_matching_digests_pass(self) -> None:
        form = parse_upload_form_fields(form_fields(md5_digest=[MD5]))
        verify_digests(form, sha256=SHA256, blake2_256=BLAKE2, md5=MD5)

    def test_computed_digests_are_compared_case_insensitively(self) -> None:
        form = parse_upload_form_fields(form_fields())
        verify_digests(form, sha256=SHA256.upper(), blake2_256=BLAKE2, md5=MD5)

    @pytest.mark.parametrize("field", ["sha256_digest", "blake2_256_digest", "md5_digest"])
    def test_any_mismatch_fails(self, field: str) -> None:
        right = {"sha256_digest": SHA256, "blake2_256_digest": BLAKE2, "md5_digest": MD5}
        wrong = {**right, field: "0" * len(right[field])}
        form = parse_upload_form_fields(form_fields(**{k: [v] for k, v in wrong.items()}))
        with pytest.raises(
            InvalidInput,
            match=re.escape(DIGEST_MISMATCH),
        ):
            verify_digests(form, sha256=SHA256, blake2_256=BLAKE2, md5=MD5)

    def test_a_form_without_digests_fails(self) -> None:
        form = UploadForm(name="demo", version="1.0", filetype="sdist", pyversion="source")
        with pytest.raises(InvalidInput, match="Include at least one message digest"):
            verify_digests(form, sha256=SHA256, blake2_256=BLAKE2, md5=MD5)
