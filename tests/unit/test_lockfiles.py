"""Reading pylock.toml, uv.lock and pinned requirements files; choosing wheels by target."""

from __future__ import annotations

import pytest
from packaging.utils import parse_wheel_filename

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.lockfiles import LockedFile, Pin, TargetPlatforms, read_lock

SHA = "a" * 64

PYLOCK = f"""
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "Demo.Pkg"
version = "1.0"
index = "https://example.invalid/simple"
sdist = {{ url = "https://example.invalid/f/demo_pkg-1.0.tar.gz", hashes = {{ sha256 = "{SHA}" }} }}
wheels = [
  {{ name = "demo_pkg-1.0-py3-none-any.whl", url = "u", hashes = {{ sha256 = "{SHA}" }} }},
]

[[packages]]
name = "local-thing"
directory = {{ path = "." }}
"""

UV_LOCK = f"""
version = 1
revision = 3
requires-python = ">=3.12"

[[package]]
name = "consumer"
version = "0"
source = {{ virtual = "." }}

[[package]]
name = "libone"
version = "2.0"
source = {{ registry = "http://127.0.0.1/simple/" }}
wheels = [
    {{ url = "http://127.0.0.1/files/ab/libone-2.0-py3-none-any.whl", hash = "sha256:{SHA}" }},
]
"""


def test_pylock_names_exact_files_and_skips_directories() -> None:
    lock = read_lock(PYLOCK)
    assert lock.kind == "pylock"
    assert lock.files == [
        LockedFile("demo-pkg", "1.0", "demo_pkg-1.0.tar.gz", SHA),
        LockedFile("demo-pkg", "1.0", "demo_pkg-1.0-py3-none-any.whl", SHA),
    ]
    assert [s.project for s in lock.skipped] == ["local-thing"]


def test_uv_lock_names_registry_files_only() -> None:
    lock = read_lock(UV_LOCK)
    assert lock.kind == "uv.lock"
    assert lock.files == [LockedFile("libone", "2.0", "libone-2.0-py3-none-any.whl", SHA)]
    assert [s.project for s in lock.skipped] == ["consumer"]


def test_requirements_pins_with_hashes_continuations_and_comments() -> None:
    text = f"""
# a comment
--index-url https://example.invalid/simple
Foo_Bar==1.2 \\
    --hash=sha256:{SHA}  # trailing comment
baz==3 ; python_version >= "3"
"""
    lock = read_lock(text)
    assert lock.pins == [Pin("foo-bar", "1.2", frozenset({SHA})), Pin("baz", "3")]


@pytest.mark.parametrize("line", ["foo>=1", "foo", "foo==1.*", "foo==1 --hash=sha256:xyz"])
def test_unpinned_or_malformed_requirements_are_refused(line: str) -> None:
    with pytest.raises(InvalidInput):
        read_lock(line + "\n", source="reqs.txt")


def test_unknown_pylock_major_version_is_refused() -> None:
    with pytest.raises(InvalidInput, match="lock-version"):
        read_lock('lock-version = "2.0"\n')


def _tags(filename: str) -> frozenset:  # type: ignore[type-arg]
    return parse_wheel_filename(filename)[3]


def test_target_platforms_choose_wheels() -> None:
    linux = TargetPlatforms(("manylinux_2_17_x86_64",), "3.12")
    assert linux.wheel_matches(_tags("x-1-cp312-cp312-manylinux_2_17_x86_64.whl"))
    assert linux.wheel_matches(_tags("x-1-py3-none-any.whl"))
    assert not linux.wheel_matches(_tags("x-1-cp312-cp312-win_amd64.whl"))
    assert not linux.wheel_matches(_tags("x-1-cp311-cp311-manylinux_2_17_x86_64.whl"))
    any_platform = TargetPlatforms((), "3.12")
    assert any_platform.wheel_matches(_tags("x-1-cp312-cp312-win_amd64.whl"))
    assert not any_platform.wheel_matches(_tags("x-1-cp311-cp311-win_amd64.whl"))
    assert TargetPlatforms().wheel_matches(_tags("x-1-cp38-cp38-macosx_11_0_arm64.whl"))
