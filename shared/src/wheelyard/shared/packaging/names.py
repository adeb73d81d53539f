"""Project names and versions: validation and normalization (docs/standards.md §1).

Pure functions over strings. Every rejection is an `InvalidInput` whose message names the value
and says what is wrong with it.
"""

from __future__ import annotations

import re

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelyard.shared.errors import InvalidInput

# The core-metadata `Name` rule, matched ASCII case-insensitively. `re.ASCII` matters: with
# IGNORECASE alone, `[A-Z]` also matches U+017F (long s), U+0131 (dotless i) and U+212A (Kelvin).
# `\Z` (not `$`) so a trailing newline is not accepted (docs/standards.md §1).
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)

# No standard caps these. The bounds keep database keys, log lines and error messages sane; a
# distribution filename (name + version + suffix) must fit in 255 characters anyway.
MAX_PROJECT_NAME_LENGTH = 200
MAX_VERSION_LENGTH = 128


def shown(value: object, limit: int = 80) -> str:
    """Return `value` quoted with control characters made visible, cut to about `limit` chars.

    Used to echo client input back in error messages without letting it run on or hide bytes.
    """
    text = repr(value)
    if len(text) > limit:
        text = text[: limit // 2] + "..." + text[-(limit // 2) :]
    return text


def validate_project_name(name: str) -> str:
    """Return `name` unchanged if it is a valid project name, else raise `InvalidInput`.

    Valid means: ASCII only (PyPI refuses non-ASCII names because of confusables,
    pypi/warehouse#2151), starts and ends with a letter or digit, and otherwise holds only
    letters, digits, `.`, `_` and `-` (docs/standards.md §1). Markup such as `<img ...>` fails
    the same rule.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput("A project name is required.")
    if len(name) > MAX_PROJECT_NAME_LENGTH:
        raise InvalidInput(
            f"Invalid project name {shown(name)}: longer than {MAX_PROJECT_NAME_LENGTH} characters."
        )
    if not name.isascii():
        raise InvalidInput(
            f"Invalid project name {shown(name)}: only ASCII letters, digits, '.', '_' and '-' "
            "are allowed."
        )
    if _NAME_RE.match(name) is None:
        raise InvalidInput(
            f"Invalid project name {shown(name)}: start and end with a letter or digit and use "
            "only ASCII letters, digits, '.', '_' and '-'."
        )
    return name


def normalize_name(name: str) -> str:
    """Return the PEP 503 normalized form of `name` (lowercase, runs of `-_.` become one `-`).

    It does not validate; call `validate_project_name` first on untrusted input.
    """
    return canonicalize_name(name)


def validate_version(version: str, *, allow_local: bool = True) -> Version:
    """Parse `version` as a PEP 440 version, or raise `InvalidInput` saying why it is not one.

    Rejects leading or trailing whitespace (`Version` would silently strip it, as PEP 440
    allows), legacy versions and anything else `packaging` cannot parse. With
    `allow_local=False`, also rejects local versions (`1.0+abc`) as PyPI does
    (docs/standards.md §1).
    """
    if not isinstance(version, str) or not version:
        raise InvalidInput("A version is required.")
    if len(version) > MAX_VERSION_LENGTH:
        raise InvalidInput(
            f"Invalid version {shown(version)}: longer than {MAX_VERSION_LENGTH} characters."
        )
    if version != version.strip():
        raise InvalidInput(
            f"Invalid version {shown(version)}: remove the leading or trailing whitespace."
        )
    try:
        parsed = Version(version)
    except (InvalidVersion, ValueError):
        # ValueError too: a release segment with thousands of digits trips int()'s digit limit.
        raise InvalidInput(
            f"Invalid version {shown(version)}: not a valid PEP 440 version "
            "(see https://packaging.python.org/specifications/version-specifiers/)."
        ) from None
    if not allow_local and parsed.local is not None:
        raise InvalidInput(
            f"Invalid version {shown(version)}: local versions ('+{parsed.local}') are not allowed."
        )
    return parsed


def wheel_name_part(project_name: str) -> str:
    """Return the escaped name used in wheel and sdist filenames: normalized, `-` -> `_`.

    `Foo.Bar` -> `foo_bar` (the binary distribution format specification, PEP 625).
    """
    return canonicalize_name(project_name).replace("-", "_")
