"""Lockfiles and pinned requirements: which distribution files a build needs.

Three inputs are understood, told apart by their content (`read_lock`):

- `pylock.toml` (PEP 751): `[[packages]]` with `name`, `version`, and `sdist` / `wheels`
  entries carrying `url` (or `path`), an optional `name` (the filename), `size`,
  `upload-time` and `hashes`;
- `uv.lock` (uv's lockfile, https://docs.astral.sh/uv/concepts/projects/layout/#the-lockfile):
  `[[package]]` with `name`, `version`, `source`, and `sdist` / `wheels` entries carrying `url`,
  `hash` (`sha256:<hex>`), `size` and `upload-time`;
- a requirements file with `==` pins (pip's format, https://pip.pypa.io/en/stable/reference/
  requirements-file-format/), with optional `--hash=sha256:<hex>` options.

A lockfile names exact files (`LockedFile`); a requirements file names versions (`Pin`), and
which of a version's files are wanted is decided against an index page (`wheel_matches`).
Packages that do not come from an index (git, directories, local paths) are reported, not
silently dropped (`Skipped`).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.filenames import listed_version

#: The largest lockfile read: lockfiles of big monorepos reach a few MB.
MAX_LOCK_BYTES = 16 * 1024 * 1024

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockedFile:
    """One distribution file a lockfile names: its project, version and filename, and the
    sha256 the lock pins (None when the lock gives none)."""

    project: str  # normalized
    version: str
    filename: str
    sha256: str | None


@dataclass(frozen=True)
class Pin:
    """`name==version` from a requirements file; `hashes` are the sha256 values it allows
    (empty: any file of the version is accepted)."""

    project: str  # normalized
    version: str
    hashes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Skipped:
    """A locked package that cannot be fetched from an index, and why."""

    project: str
    reason: str


@dataclass
class Lock:
    """What one lockfile asks for."""

    kind: str  # "pylock", "uv.lock" or "requirements"
    files: list[LockedFile] = field(default_factory=list)
    pins: list[Pin] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def read_lock(text: str, *, source: str = "lockfile") -> Lock:
    """Parse `text` as a pylock.toml, a uv.lock or a requirements file (by its content);
    `source` names it in error messages. Raises InvalidInput saying what is wrong."""
    if len(text) > MAX_LOCK_BYTES:
        raise InvalidInput(f"{source}: larger than {MAX_LOCK_BYTES} bytes")
    document: dict[str, Any] | None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        document = None
    if document is not None and "lock-version" in document:
        return _pylock(document, source)
    if document is not None and isinstance(document.get("package"), list):
        return _uv_lock(document, source)
    return _requirements(text, source)


def _filename_of(entry: dict[str, Any], source: str, project: str) -> str:
    name = entry.get("name")
    if isinstance(name, str) and name:
        return name
    where = entry.get("url") or entry.get("path")
    if not isinstance(where, str) or not where:
        raise InvalidInput(f"{source}: a file of '{project}' has neither a name nor a url")
    return unquote(urlsplit(where).path.rsplit("/", 1)[-1])


def _sha256(value: object, source: str, filename: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.match(value.lower()):
        raise InvalidInput(f"{source}: '{filename}' has a malformed sha256 {value!r}")
    return value.lower()


def _entries(package: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    sdist = package.get("sdist")
    if isinstance(sdist, dict):
        found.append(sdist)
    wheels = package.get("wheels")
    if isinstance(wheels, list):
        found.extend(w for w in wheels if isinstance(w, dict))
    return found


def _name_version(package: dict[str, Any], source: str) -> tuple[str, str | None]:
    name = package.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{source}: a package entry has no name")
    version = package.get("version")
    return canonicalize_name(name), version if isinstance(version, str) else None


def _pylock(document: dict[str, Any], source: str) -> Lock:
    # PEP 751: "lock-version" 1.x; a reader must refuse a major version it does not know.
    version = str(document.get("lock-version", ""))
    if not version.startswith("1."):
        raise InvalidInput(f"{source}: pylock.toml lock-version {version!r} is not supported")
    lock = Lock("pylock")
    packages = document.get("packages", [])
    if not isinstance(packages, list):
        raise InvalidInput(f"{source}: `packages` is not an array of tables")
    for package in packages:
        if not isinstance(package, dict):
            raise InvalidInput(f"{source}: a `packages` entry is not a table")
        project, pkg_version = _name_version(package, source)
        entries = _entries(package)
        if not entries:
            kind = next((k for k in ("vcs", "directory", "archive") if k in package), "no file")
            lock.skipped.append(Skipped(project, f"locked as {kind}, not from an index"))
            continue
        for entry in entries:
            if "url" not in entry:
                lock.skipped.append(Skipped(project, "a file given by path, not from an index"))
                continue
            filename = _filename_of(entry, source, project)
            hashes = entry.get("hashes")
            if not isinstance(hashes, dict):
                hashes = {}
            lock.files.append(
                LockedFile(
                    project,
                    pkg_version or _version_from(filename),
                    filename,
                    _sha256(hashes.get("sha256"), source, filename),
                )
            )
    return lock


def _uv_lock(document: dict[str, Any], source: str) -> Lock:
    lock = Lock("uv.lock")
    for package in document["package"]:
        if not isinstance(package, dict):
            raise InvalidInput(f"{source}: a `package` entry is not a table")
        project, pkg_version = _name_version(package, source)
        origin = package.get("source", {})
        if not isinstance(origin, dict) or "registry" not in origin:
            kinds = ", ".join(sorted(origin)) if isinstance(origin, dict) else "unknown"
            lock.skipped.append(Skipped(project, f"source is {kinds or 'unknown'}, not an index"))
            continue
        for entry in _entries(package):
            filename = _filename_of(entry, source, project)
            raw = entry.get("hash")
            digest = None
            if isinstance(raw, str) and raw.startswith("sha256:"):
                digest = _sha256(raw.removeprefix("sha256:"), source, filename)
            lock.files.append(
                LockedFile(project, pkg_version or _version_from(filename), filename, digest)
            )
    return lock


def _version_from(filename: str) -> str:
    return listed_version(filename)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines with `\\` continuations joined and comments removed (pip's rules)."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        stripped = re.sub(r"(^|\s)#.*$", "", line)
        if stripped.rstrip().endswith("\\"):
            pending += stripped.rstrip()[:-1] + " "
            continue
        yield start, pending + stripped
        pending = ""
    if pending:
        yield start, pending


def _requirements(text: str, source: str) -> Lock:
    lock = Lock("requirements")
    for number, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("-"):
            continue  # a global option (--index-url, -r, -c ...): not a package
        # The requirement comes first, its options (--hash) after it (pip's format).
        spec, *rest = re.split(r"\s+(?=--?[A-Za-z])", stripped, maxsplit=1)
        try:
            options = shlex.split(rest[0]) if rest else []
        except ValueError as exc:
            raise InvalidInput(f"{source}:{number}: {exc}") from None
        hashes: set[str] = set()
        for index, option in enumerate(options):
            if option == "--hash" and index + 1 < len(options):
                option = "--hash=" + options[index + 1]
            if option.startswith("--hash="):
                algorithm, _, value = option.removeprefix("--hash=").partition(":")
                if algorithm == "sha256":
                    digest = _sha256(value, f"{source}:{number}", spec)
                    assert digest is not None
                    hashes.add(digest)
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise InvalidInput(f"{source}:{number}: {exc}") from None
        if requirement.url:
            lock.skipped.append(Skipped(requirement.name, "a direct URL, not from an index"))
            continue
        pinned = [s for s in requirement.specifier if s.operator in ("==", "===")]
        if len(pinned) != 1 or "*" in pinned[0].version:
            raise InvalidInput(
                f"{source}:{number}: '{line.strip()}' is not pinned to one version with =="
            )
        lock.pins.append(
            Pin(canonicalize_name(requirement.name), pinned[0].version, frozenset(hashes))
        )
    return lock


@dataclass(frozen=True)
class TargetPlatforms:
    """Which wheels a pin wants: `platforms` (wheel platform tags such as
    `manylinux_2_17_x86_64`) and `python_version` (`3.12`). Unset means any."""

    platforms: tuple[str, ...] = ()
    python_version: str | None = None

    def _tags(self) -> set[Tag] | None:
        if self.python_version is None:
            return None
        try:
            major, minor = (int(p) for p in self.python_version.split(".")[:2])
        except ValueError:
            raise InvalidInput(
                f"python version {self.python_version!r}: expected X.Y, such as 3.12"
            ) from None
        # pip's --platform/--python-version use the same generators (packaging.tags).
        platforms = list(self.platforms) or ["any"]
        return set(cpython_tags((major, minor), platforms=platforms)) | set(
            compatible_tags((major, minor), platforms=platforms)
        )

    def wheel_matches(self, tags: Iterable[Tag]) -> bool:
        """Whether a wheel with `tags` installs on one of the targets."""
        tags = list(tags)
        wanted = self._tags()
        if wanted is None:
            return not self.platforms or any(
                t.platform == "any" or t.platform in self.platforms for t in tags
            )
        if not self.platforms:
            # Any platform: compare interpreter and ABI only.
            pairs = {(t.interpreter, t.abi) for t in wanted}
            return any((t.interpreter, t.abi) in pairs for t in tags)
        return any(t in wanted for t in tags)
