"""Which `.metadata` a proxy reads ahead (`wheelyard.proxy_cache.readahead.MetadataPick`):
the newest final release's only wheel, when it installs everywhere and its metadata can be
verified; nothing wherever an installer could ask for another file."""

from __future__ import annotations

import pytest

from wheelyard.proxy_cache.readahead import MAX_DEPENDENCIES, MetadataPick, sure_dependencies
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import SimpleFile

pytestmark = pytest.mark.unit

META = "ab" * 32


def listed(filename: str, *, yanked: bool | str = False, meta: str | None = META) -> SimpleFile:
    return SimpleFile(
        filename=filename,
        url=f"https://files.example/{filename}",
        sha256="cd" * 32,
        size=10,
        yanked=yanked,
        core_metadata_sha256=meta,
        has_core_metadata=meta is not None,
    )


def pick(*files: SimpleFile) -> str | None:
    chooser = MetadataPick()
    for f in files:
        chooser.see(f, listed_version(f.filename))
    chosen = chooser.choice()
    return chosen.filename if chosen is not None else None


def test_the_newest_releases_only_universal_wheel_is_chosen() -> None:
    assert (
        pick(
            listed("demo-1.0-py3-none-any.whl"),
            listed("demo-2.0.tar.gz", meta=None),
            listed("demo-2.0-py2.py3-none-any.whl"),
            listed("demo-1.5-py3-none-any.whl"),
        )
        == "demo-2.0-py2.py3-none-any.whl"
    )


@pytest.mark.parametrize(
    ("files", "why"),
    [
        (
            ("demo-2.0-py3-none-any.whl", "demo-2.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
            "two wheels: which one depends on the installer",
        ),
        (("demo-2.0-cp311-cp311-win_amd64.whl",), "a platform wheel"),
        (("demo-2.0-cp311-none-any.whl",), "an interpreter's wheel"),
        (("demo-1.0-py3-none-any.whl", "demo-2.0.tar.gz"), "the newest release is an sdist"),
        (("demo-2.0-py2-none-any.whl",), "a Python 2 wheel"),
        ((), "no files"),
        (("not-a-wheel.whl",), "no version"),
    ],
)
def test_nothing_is_chosen_where_an_installer_could_want_another_file(
    files: tuple[str, ...], why: str
) -> None:
    assert pick(*(listed(f) for f in files)) is None, why


def test_a_yanked_file_is_passed_over_for_the_release_installers_pick() -> None:
    assert (
        pick(
            listed("demo-1.0-py3-none-any.whl"),
            listed("demo-2.0-py3-none-any.whl", yanked="broken"),
        )
        == "demo-1.0-py3-none-any.whl"
    )


def test_a_wheel_without_a_metadata_hash_is_never_chosen() -> None:
    # Its `.metadata` could not be verified, so it would never be cached.
    assert pick(listed("demo-2.0-py3-none-any.whl", meta=None)) is None


def test_a_pre_release_is_passed_over_for_the_newest_final_release() -> None:
    # Installers take pre-releases only when asked to (PEP 440, "Handling of pre-releases").
    assert (
        pick(listed("demo-1.0-py3-none-any.whl"), listed("demo-2.0.dev1-py3-none-any.whl"))
        == "demo-1.0-py3-none-any.whl"
    )


def metadata(*requires: str) -> bytes:
    lines = ["Metadata-Version: 2.1", "Name: demo", "Version: 1.0"]
    return "\n".join(lines + [f"Requires-Dist: {r}" for r in requires]).encode() + b"\n"


def test_sure_dependencies_are_the_unconditional_requirements_normalized_once() -> None:
    assert sure_dependencies(
        metadata(
            "Typing_Extensions>=4",
            "typing-extensions<5",
            "idna (>=2.5)",
            'colorama; sys_platform == "win32"',
            'rich; extra == "cli"',
            "pip @ https://example.org/pip.whl",
            "Zope.Interface[test]",
        )
    ) == ["typing-extensions", "idna", "zope-interface"]


def test_metadata_that_does_not_parse_names_no_dependencies() -> None:
    assert sure_dependencies(b"\xff\xfe not metadata") == []
    assert sure_dependencies(metadata("not a requirement !!")) == []


def test_at_most_max_dependencies_are_named() -> None:
    many = [f"dep{i}" for i in range(MAX_DEPENDENCIES + 10)]
    assert sure_dependencies(metadata(*many)) == many[:MAX_DEPENDENCIES]
