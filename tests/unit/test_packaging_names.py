"""Project names and versions: what is valid, how it normalizes, and what the errors say."""

from __future__ import annotations

import pytest
from packaging.version import Version

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.names import (
    normalize_name,
    validate_project_name,
    validate_version,
    wheel_name_part,
)


@pytest.mark.parametrize(
    "name", ["a", "Z", "0", "foo", "Foo_Bar", "foo.bar", "foo-bar", "a1.b2_c3-D4", "x" * 200]
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_project_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "-foo",
        "foo-",
        "_foo",
        "foo_",
        ".foo",
        "foo.",
        "foo bar",
        "foo/bar",
        "foo\n",  # `$` would accept this; `\Z` does not
        "foo\x00",
        "<img src=x onerror=alert(1)>",
        "foo<script>",
        "p\u0430ckage",  # Cyrillic a (U+0430), a confusable
        "\u017ftrict",  # U+017F matches [a-z] under IGNORECASE without re.ASCII
        "\u212aelvin",  # Kelvin sign, same trap
        "caf\u00e9",
        "x" * 201,
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid project name"):
        validate_project_name(name)


@pytest.mark.parametrize("name", ["", None, 42])
def test_missing_name_is_refused(name: object) -> None:
    with pytest.raises(InvalidInput, match="required"):
        validate_project_name(name)  # type: ignore[arg-type]


def test_non_ascii_message_says_ascii() -> None:
    with pytest.raises(InvalidInput, match="ASCII"):
        validate_project_name("p\u0430ckage")


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Foo_Bar", "foo-bar"),
        ("foo.bar", "foo-bar"),
        ("FOO-bar", "foo-bar"),
        ("foo__..--bar", "foo-bar"),
        ("Django", "django"),
    ],
)
def test_normalize_name_follows_pep_503(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


@pytest.mark.parametrize(
    ("name", "part"), [("Foo.Bar", "foo_bar"), ("foo-bar", "foo_bar"), ("A__b", "a_b")]
)
def test_wheel_name_part_is_normalized_with_underscores(name: str, part: str) -> None:
    assert wheel_name_part(name) == part


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("1.0", "1.0"),
        ("01.0", "1.0"),
        ("1.0-post1", "1.0.post1"),
        ("1.0a", "1.0a0"),
        ("v1.0", "1.0"),
        ("1.0_rc1", "1.0rc1"),
        ("1.0+Local.1", "1.0+local.1"),
        ("2!1.0.dev3", "2!1.0.dev3"),
    ],
)
def test_valid_versions_parse_to_their_normalized_form(raw: str, normalized: str) -> None:
    parsed = validate_version(raw)
    assert isinstance(parsed, Version)
    assert str(parsed) == normalized


@pytest.mark.parametrize("raw", [" 1.0", "1.0 ", "1.0\n", "\t1.0"])
def test_versions_with_surrounding_whitespace_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="whitespace"):
        validate_version(raw)


@pytest.mark.parametrize(
    "raw", ["foo", "1.0.0.x", "1.0-SNAPSHOT", "1..0", "1.0$", "latest", "1" * 5000]
)
def test_legacy_and_invalid_versions_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid version"):
        validate_version(raw)


def test_missing_version_is_refused() -> None:
    with pytest.raises(InvalidInput, match="required"):
        validate_version("")


def test_local_versions_can_be_refused() -> None:
    assert validate_version("1.0+abc").local == "abc"
    with pytest.raises(InvalidInput, match="local versions"):
        validate_version("1.0+abc", allow_local=False)
    assert validate_version("1.0", allow_local=False) == Version("1.0")
