"""Distribution filenames: parsing (PEP 427/491 wheels, PEP 625 sdists), the characters refused
before parsing, and the ties to the form and the metadata (docs/standards.md §2)."""

from __future__ import annotations

import pytest
from packaging.tags import Tag
from packaging.version import Version

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.filenames import DistFile, check_matches, parse_dist_filename


def test_wheel_parses_into_its_parts() -> None:
    dist = parse_dist_filename("foo_bar-1.0-py2.py3-none-any.whl")
    assert dist == DistFile(
        filename="foo_bar-1.0-py2.py3-none-any.whl",
        kind="wheel",
        extension=".whl",
        project="foo-bar",
        name_part="foo_bar",
        version=Version("1.0"),
        version_part="1.0",
        build_tag=(),
        tags=frozenset({Tag("py2", "none", "any"), Tag("py3", "none", "any")}),
        python_tags=("py2", "py3"),
        abi_tags=("none",),
        platform_tags=("any",),
    )
    assert dist.python_tag == "py2.py3"
    assert dist.canonical_version == "1"


def test_wheel_with_build_tag_and_platform_tags() -> None:
    dist = parse_dist_filename(
        "numpy-2.1.0-1local-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    )
    assert dist.build_tag == (1, "local")
    assert dist.python_tags == ("cp312",)
    assert dist.platform_tags == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")


def test_sdist_parses_into_its_parts() -> None:
    dist = parse_dist_filename("foo_bar-1.0.post1.tar.gz")
    assert dist.kind == "sdist"
    assert dist.extension == ".tar.gz"
    assert dist.project == "foo-bar"
    assert dist.version == Version("1.0.post1")
    assert dist.python_tag == "source"
    assert dist.tags == frozenset()


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("../../etc/x-1.0.tar.gz", "'/'"),
        ("a/b-1.0.tar.gz", "'/'"),
        ("x\\y-1.0-py3-none-any.whl", "'/' or '\\\\'"),
        ("foo-1.0.tar.gz\x00.whl", "non-printable"),
        ("foo\n-1.0.tar.gz", "non-printable"),
        ("foo\x7f-1.0.tar.gz", "DEL"),
        ("foo..bar-1.0.tar.gz", "'..'"),
        (".foo-1.0.tar.gz", "start with '.'"),
        ("", "required"),
        ("f" * 250 + "-1.0.tar.gz", "longer than 255"),
        ("föö-1.0.tar.gz", "ASCII"),
    ],
)
def test_dangerous_filenames_are_refused(filename: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        parse_dist_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0.egg",
        "foo-1.0.exe",
        "foo-1.0.tar.bz2",
        "foo-1.0.tgz",
        "foo-1.0.zip",
        "foo-1.0-py3-none-any.WHL",
        "foo-1.0.msi",
        "foo-1.0.rpm",
    ],
)
def test_other_extensions_are_refused(filename: str) -> None:
    with pytest.raises(InvalidInput, match=r"Invalid file extension: use \.whl or \.tar\.gz"):
        parse_dist_filename(filename)


def test_zip_sdist_only_when_allowed() -> None:
    dist = parse_dist_filename("foo_bar-1.0.zip", allow_zip_sdist=True)
    assert dist.kind == "sdist"
    assert dist.extension == ".zip"
    with pytest.raises(InvalidInput, match="Invalid file extension"):
        parse_dist_filename("foo_bar-1.0.zip")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Foo.Bar-1.0-py3-none-any.whl", "foo_bar"),
        ("Foo_Bar-1.0-py3-none-any.whl", "foo_bar"),
        ("foo.bar-1.0-py3-none-any.whl", "foo_bar"),
    ],
)
def test_wheel_name_part_must_be_normalized(filename: str, expected: str) -> None:
    with pytest.raises(
        InvalidInput, match=f"should contain the normalized project name '{expected}'"
    ):
        parse_dist_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0-x1-py3-none-any.whl",  # build tag must start with a digit
        "foo-1.0-py3-none.whl",  # too few parts
        "foo-1.0-1-2-py3-none-any.whl",  # too many parts
        "foo-notaversion-py3-none-any.whl",
        "foo__bar-1.0-py3-none-any.whl",
        "foo-1.0-py3--any.whl",
        "_foo-1.0-py3-none-any.whl",
    ],
)
def test_malformed_wheel_names_are_refused(filename: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid filename"):
        parse_dist_filename(filename)


def test_wheel_version_need_not_be_normalized() -> None:
    # A filename carries the version as built, not its canonical form (the binary distribution
    # format spec asks only for PEP 440 normalization); PyPI compares it as a Version.
    dist = parse_dist_filename("foo-1.0.0-py3-none-any.whl")
    assert dist.version_part == "1.0.0"
    assert dist.canonical_version == "1"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Foo-Bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"),
        ("foo.bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"),
        ("foo_bar-01.0.tar.gz", "foo_bar-1.0.tar.gz"),
        ("foo_bar-1.0-1.tar.gz", "foo_bar-1.0.post1.tar.gz"),  # not `foo_bar_1_0-1`
        ("Foo-Bar-1.0-1.tar.gz", "foo_bar-1.0.post1.tar.gz"),
        ("FOO-1.0.tar.gz", "foo-1.0.tar.gz"),
        ("foo-v1.0.tar.gz", "foo-1.0.tar.gz"),
    ],
)
def test_sdist_must_be_exactly_normalized(filename: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=f"should be '{expected}'"):
        parse_dist_filename(filename)


@pytest.mark.parametrize(
    "filename", ["foo.tar.gz", "-1.0.tar.gz", "foo-bar.tar.gz", "_foo-1.0.tar.gz"]
)
def test_malformed_sdist_names_are_refused(filename: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid filename"):
        parse_dist_filename(filename)


class TestCheckMatches:
    dist = parse_dist_filename("foo_bar-1.0-py3-none-any.whl")

    @pytest.mark.parametrize("name", ["foo_bar", "Foo.Bar", "FOO-BAR", "foo__bar"])
    @pytest.mark.parametrize("version", ["1.0", "1", "1.0.0", "01.0", "v1.0"])
    def test_equivalent_spellings_match(self, name: str, version: str) -> None:
        check_matches(self.dist, name=name, version=version)
        check_matches(self.dist, name=name, version=Version(version), source="metadata")

    def test_nothing_to_check_is_fine(self) -> None:
        check_matches(self.dist)

    def test_version_mismatch_says_what_differs(self) -> None:
        with pytest.raises(InvalidInput) as caught:
            check_matches(self.dist, version="1.1")
        assert caught.value.message == (
            "The filename says version 1.0 but the form field 'version' says 1.1."
        )

    def test_name_mismatch_says_what_differs(self) -> None:
        with pytest.raises(InvalidInput) as caught:
            check_matches(self.dist, name="bar")
        assert caught.value.message == (
            "The filename says project foo-bar but the form field 'name' says bar."
        )

    def test_metadata_wording(self) -> None:
        with pytest.raises(InvalidInput, match=r"the metadata field 'Version' says 2\.0"):
            check_matches(self.dist, version="2.0", source="metadata")
        with pytest.raises(InvalidInput, match="the metadata field 'Name' says other"):
            check_matches(self.dist, name="other", source="metadata")

    def test_local_version_is_part_of_identity(self) -> None:
        with pytest.raises(InvalidInput, match=r"says 1\.0\+abc"):
            check_matches(self.dist, version="1.0+abc")

    def test_invalid_values_are_refused_as_invalid(self) -> None:
        with pytest.raises(InvalidInput, match="Invalid version"):
            check_matches(self.dist, version=" 1.0")
        with pytest.raises(InvalidInput, match="Invalid project name"):
            check_matches(self.dist, name="<b>")


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("pkg-1.0-py3-none-any.whl", "pkg-1.0.0-py3-none-any.whl", True),
        ("pkg-1.0-py3-none-any.whl", "pkg-v1.0-py3-none-any.whl", True),
        ("pkg-1.0-py2.py3-none-any.whl", "pkg-1.0-py3.py2-none-any.whl", True),
        ("pkg-1.0-1-py3-none-any.whl", "pkg-1.0-01-py3-none-any.whl", True),
        ("pkg-1.0.tar.gz", "pkg-1.0.0.tar.gz", True),
        ("pkg-1.0.tar.gz", "pkg-1.0.zip", True),
        ("pkg-1.0-py3-none-any.whl", "pkg-1.0-1-py3-none-any.whl", False),
        ("pkg-1.0-py3-none-any.whl", "pkg-1.0-py2.py3-none-any.whl", False),
        ("pkg-1.0-py3-none-any.whl", "pkg-1.0.post0-py3-none-any.whl", False),
        ("pkg-1.0-py3-none-any.whl", "pkg-1.0.tar.gz", False),
        ("pkg-1.0+a-py3-none-any.whl", "pkg-1.0-py3-none-any.whl", False),
    ],
)
def test_identity_is_what_an_installer_sees(first: str, second: str, same: bool) -> None:
    one = parse_dist_filename(first, allow_zip_sdist=True)
    other = parse_dist_filename(second, allow_zip_sdist=True)
    assert (one.identity == other.identity) is same, (one.identity, other.identity)
