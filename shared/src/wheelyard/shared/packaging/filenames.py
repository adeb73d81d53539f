"""Distribution filenames: parse and police what an upload may be called (docs/standards.md §2).

`parse_dist_filename` is the gate every uploaded filename passes before it is used as a storage
key, a database value or a URL segment; `check_matches` ties it to the form and the metadata.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.names import (
    shown,
    validate_project_name,
    validate_version,
    wheel_name_part,
)

# Most filesystems and object stores cap a path segment at 255 bytes; the name is ASCII-only.
MAX_FILENAME_LENGTH = 255

DistKind = Literal["wheel", "sdist"]


@dataclass(frozen=True)
class DistFile:
    """A distribution filename that passed `parse_dist_filename`, split into its parts.

    `project` is the PEP 503 normalized name; `version` the parsed version from the filename
    (`version_part` is it as written). Wheel-only fields are empty for sdists.
    """

    filename: str
    kind: DistKind
    extension: str
    project: str
    name_part: str
    version: Version
    version_part: str
    build_tag: BuildTag = ()
    tags: frozenset[Tag] = field(default_factory=frozenset)
    python_tags: tuple[str, ...] = ()
    abi_tags: tuple[str, ...] = ()
    platform_tags: tuple[str, ...] = ()

    @property
    def canonical_version(self) -> str:
        """The release identity: `canonicalize_version` (`1.0` and `1.0.0` are one release)."""
        return canonicalize_version(self.version)

    @property
    def identity(self) -> str:
        """What an installer sees of this file, whatever the spelling of its name.

        A wheel is (project, canonical version, build tag, tag set); an sdist is (project,
        canonical version): `pkg-1.0-py3-none-any.whl`, `pkg-1.0.0-py3-none-any.whl` and
        `pkg-v1.0-py3-none-any.whl` are one file to pip, and so are `py2.py3` and `py3.py2`.
        The tag set of a wheel name is the product of its three dotted fields, so the sorted
        sets of each field name it exactly. The database holds one live-or-deleted file per
        identity and repository (`files.identity`; migration 0003 has a frozen copy of this).
        """
        if self.kind == "sdist":
            return f"sdist {self.project} {self.canonical_version}"
        build = f"{self.build_tag[0]}{self.build_tag[1]}" if self.build_tag else "-"
        fields = (
            sorted({t.interpreter for t in self.tags}),
            sorted({t.abi for t in self.tags}),
            sorted({t.platform for t in self.tags}),
        )
        tags = "-".join(".".join(parts) for parts in fields)
        return f"wheel {self.project} {self.canonical_version} {build} {tags}"

    @property
    def python_tag(self) -> str:
        """The `pyversion` a client would send: the raw python-tag field, or `source`."""
        return ".".join(self.python_tags) if self.kind == "wheel" else "source"


def _reject(filename: str, reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid filename {shown(filename)}: {reason}")


def _check_characters(filename: object) -> str:
    """Apply the character rules of docs/standards.md §2 (PyPI's messages where it has them)."""
    if not isinstance(filename, str) or not filename:
        raise InvalidInput("A filename is required.")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise _reject(filename, f"longer than {MAX_FILENAME_LENGTH} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in filename):
        raise InvalidInput(
            "Cannot upload a file with non-printable characters (ordinals 0-31) or the DEL "
            "character (ordinal 127) in the name."
        )
    if "/" in filename or "\\" in filename:
        raise InvalidInput("Cannot upload a file with '/' or '\\' in the name.")
    if ".." in filename:
        raise _reject(filename, "'..' is not allowed in a filename.")
    if filename.startswith("."):
        raise _reject(filename, "a filename must not start with '.'.")
    if not filename.isascii():
        raise _reject(filename, "only ASCII characters are allowed.")
    return filename


def _check_name_part(filename: str, name_part: str) -> None:
    """The name part must be a valid name already in the normalized `_` form (PyPI rule)."""
    try:
        validate_project_name(name_part)
    except InvalidInput as exc:
        raise _reject(filename, exc.message) from None
    expected = wheel_name_part(name_part)
    if name_part != expected:
        raise InvalidInput(
            f"Filename {shown(filename)} should contain the normalized project name "
            f"{expected!r}, not {name_part!r}."
        )


def _parse_wheel(filename: str) -> DistFile:
    try:
        project, version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise _reject(filename, f"not a valid wheel filename ({exc}).") from None
    parts = filename[: -len(".whl")].split("-")
    _check_name_part(filename, parts[0])
    python_field, abi_field, platform_field = parts[-3:]
    return DistFile(
        filename=filename,
        kind="wheel",
        extension=".whl",
        project=project,
        name_part=parts[0],
        version=version,
        version_part=parts[1],
        build_tag=build,
        tags=tags,
        python_tags=tuple(python_field.split(".")),
        abi_tags=tuple(abi_field.split(".")),
        platform_tags=tuple(platform_field.split(".")),
    )


def _suggest_sdist_filename(filename: str, extension: str) -> str | None:
    """The exact name the uploader probably meant, splitting at the leftmost workable '-'.

    `parse_sdist_filename` splits at the last '-', which turns `Foo-Bar-1.0-1` into project
    `foo-bar-1-0`; a hyphen inside the version (`1.0-1` is 1.0.post1) is likelier.
    """
    stem = filename[: -len(extension)]
    for index, char in enumerate(stem):
        if char != "-":
            continue
        with contextlib.suppress(InvalidVersion):
            version = Version(stem[index + 1 :])
            return f"{wheel_name_part(stem[:index])}-{version}{extension}"
    return None


def _parse_sdist(filename: str, extension: str) -> DistFile:
    try:
        project, version = parse_sdist_filename(filename)
    except InvalidSdistFilename as exc:
        raise _reject(filename, f"not a valid sdist filename ({exc}).") from None
    name_part, _, version_part = filename[: -len(extension)].rpartition("-")
    try:
        validate_project_name(name_part)
    except InvalidInput as exc:
        raise _reject(filename, exc.message) from None
    # PEP 625 as PyPI enforces it: exactly `{normalized_name_with_underscores}-{str(Version)}`.
    expected = f"{wheel_name_part(project)}-{version}{extension}"
    if filename != expected:
        expected = _suggest_sdist_filename(filename, extension) or expected
        raise InvalidInput(f"Filename {shown(filename)} is invalid, should be {expected!r}.")
    return DistFile(
        filename=filename,
        kind="sdist",
        extension=extension,
        project=project,
        name_part=name_part,
        version=version,
        version_part=version_part,
    )


def parse_dist_filename(filename: str, *, allow_zip_sdist: bool = False) -> DistFile:
    """Parse an uploaded distribution filename, or raise `InvalidInput` saying what is wrong.

    Accepts `{name}-{version}(-{build})?-{py}-{abi}-{plat}.whl` whose name part is exactly the
    normalized `_` form, and sdists named exactly `{name_}-{normalized version}.tar.gz`
    (`.zip` too when `allow_zip_sdist`). Rejects empty or over-long names, `/`, `\\`, `..`,
    control characters and DEL, a leading `.`, non-ASCII, and every other extension.
    """
    filename = _check_characters(filename)
    if filename.endswith(".whl"):
        return _parse_wheel(filename)
    if filename.endswith(".tar.gz"):
        return _parse_sdist(filename, ".tar.gz")
    if filename.endswith(".zip") and allow_zip_sdist:
        return _parse_sdist(filename, ".zip")
    allowed = ".whl, .tar.gz or .zip" if allow_zip_sdist else ".whl or .tar.gz"
    raise InvalidInput(f"Invalid file extension: use {allowed} (filename {shown(filename)}).")


def check_matches(
    dist: DistFile,
    *,
    name: str | None = None,
    version: str | Version | None = None,
    source: Literal["form", "metadata"] = "form",
) -> None:
    """Raise `InvalidInput` unless `name`/`version` denote the same project/release as `dist`.

    Names compare normalized, versions by `canonicalize_version` (docs/standards.md §1), so
    `Foo.Bar` matches `foo_bar` and `1.0.0` matches `1.0`. `source` only picks the wording:
    the form field `'name'`/`'version'` or the metadata field `'Name'`/`'Version'`. A `None`
    argument is not checked.
    """
    name_field, version_field = (
        ("'name'", "'version'") if source == "form" else ("'Name'", "'Version'")
    )
    where = "the form field" if source == "form" else "the metadata field"
    if name is not None:
        validate_project_name(name)
        if canonicalize_name(name) != dist.project:
            raise InvalidInput(
                f"The filename says project {dist.project} but {where} {name_field} says {name}."
            )
    if version is not None:
        parsed = version if isinstance(version, Version) else validate_version(version)
        if canonicalize_version(parsed) != dist.canonical_version:
            raise InvalidInput(
                f"The filename says version {dist.version_part} but {where} {version_field} "
                f"says {version}."
            )


def listed_version(filename: str) -> str:
    """The normalized version in a listed distribution's filename, or `0` when it has none
    that parses: the version segment of the file's URL on proxied pages.

    Only the version field is read (no tag parsing), so a page of 100,000 files costs little;
    the filename itself was checked when the page was parsed.
    """
    try:
        if filename.endswith(".whl"):
            raw = filename[:-4].split("-")[1]
        else:
            stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
            name, dash, raw = stem.rpartition("-")
            if not dash or not name:
                return "0"
        return str(Version(raw))
    except (IndexError, InvalidVersion):
        return "0"
