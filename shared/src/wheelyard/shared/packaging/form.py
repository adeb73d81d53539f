"""The legacy upload form's non-file fields: validate them as PyPI does (docs/standards.md §7).

The route collects the multipart fields into `{name: [values...]}` (repeated parts keep every
value) and hands them here; the file part is the route's business. The form's metadata is
advisory: the service takes the truth from the artifact and requires the two to agree.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from wheelyard.shared.errors import Gone, InvalidInput
from wheelyard.shared.packaging.metadata import TEXT_FIELDS, UNKNOWN, check_metadata_version
from wheelyard.shared.packaging.names import shown, validate_project_name, validate_version

FileType = Literal["bdist_wheel", "sdist"]

# PyPI's 410 texts (warehouse forklift/legacy.py). Never say "was ever registered": poetry
# answers a 400 containing that phrase by calling `submit` (docs/standards.md §7).
_GONE_ACTIONS = {
    "submit": "Project pre-registration is no longer required or supported, upload your files "
    "instead.",
    "submit_pkg_info": "Project pre-registration is no longer required or supported, upload "
    "your files instead.",
    "doc_upload": "Uploading documentation is no longer supported, we recommend using "
    "https://readthedocs.org/.",
}
_DIGESTS = {
    "sha256_digest": (re.compile(r"[0-9a-f]{64}", re.IGNORECASE | re.ASCII), "SHA256"),
    "blake2_256_digest": (re.compile(r"[0-9a-f]{64}", re.IGNORECASE | re.ASCII), "BLAKE2"),
    "md5_digest": (re.compile(r"[0-9a-f]{32}", re.IGNORECASE | re.ASCII), "MD5"),
}
# Core metadata's text fields, and the form's own: `comment`, `attestations` (PEP 740).
_TEXT_FIELDS = (*TEXT_FIELDS, "comment", "attestations")
# Multiple-use fields and every spelling clients send for them (docs/standards.md §7: uv/poetry
# `import_names`, hatch `import_name`/`license_file`, pdm `provides_extras`).
_LIST_FIELDS = {
    "classifiers": ("classifiers", "classifier"),
    "requires_dist": ("requires_dist",),
    "provides_dist": ("provides_dist",),
    "obsoletes_dist": ("obsoletes_dist",),
    "requires_external": ("requires_external",),
    "project_urls": ("project_urls", "project_url"),
    "provides_extra": ("provides_extra", "provides_extras"),
    "dynamic": ("dynamic",),
    "platforms": ("platform", "platforms"),
    "supported_platforms": ("supported_platform", "supported_platforms"),
    "license_files": ("license_file", "license_files"),
    "import_names": ("import_name", "import_names"),
    "import_namespaces": ("import_namespace", "import_namespaces"),
}


@dataclass(frozen=True)
class UploadForm:
    """The validated non-file fields of one legacy upload.

    `name`/`version` are as sent (valid, not normalized); digests are lowercase hex or `None`;
    `pyversion` is `source` for sdists. Text fields are `None` when absent, empty or `UNKNOWN`;
    list fields merge every client spelling in order, without duplicates. `import_names` and
    `import_namespaces` are `None` unless a value was sent. `warnings` are for the uploader.
    """

    name: str
    version: str
    filetype: FileType
    pyversion: str
    sha256_digest: str | None = None
    blake2_256_digest: str | None = None
    md5_digest: str | None = None
    metadata_version: str | None = None
    protocol_version: str = "1"
    summary: str | None = None
    description: str | None = None
    description_content_type: str | None = None
    keywords: str | None = None
    home_page: str | None = None
    download_url: str | None = None
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license: str | None = None
    license_expression: str | None = None
    requires_python: str | None = None
    comment: str | None = None
    attestations: str | None = None
    classifiers: list[str] = field(default_factory=list)
    requires_dist: list[str] = field(default_factory=list)
    provides_dist: list[str] = field(default_factory=list)
    obsoletes_dist: list[str] = field(default_factory=list)
    requires_external: list[str] = field(default_factory=list)
    project_urls: list[str] = field(default_factory=list)
    provides_extra: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    supported_platforms: list[str] = field(default_factory=list)
    license_files: list[str] = field(default_factory=list)
    import_names: list[str] | None = None
    import_namespaces: list[str] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def digests(self) -> dict[str, str]:
        """The digests the client sent, keyed `sha256`, `blake2_256`, `md5`."""
        sent = {
            "sha256": self.sha256_digest,
            "blake2_256": self.blake2_256_digest,
            "md5": self.md5_digest,
        }
        return {key: value for key, value in sent.items() if value}


def _values(fields: Mapping[str, list[str]], key: str) -> list[str]:
    """Values of `key` minus PyPI's deletions: empty strings and `UNKNOWN` (legacy.py)."""
    raw = fields.get(key) or []
    if isinstance(raw, str):  # be forgiving about a plain mapping of strings
        raw = [raw]
    return [v for v in raw if isinstance(v, str) and v and v.strip() != UNKNOWN]


def _single(fields: Mapping[str, list[str]], key: str) -> str | None:
    """One value for a control field; repeats must agree, or the request is ambiguous."""
    values = list(dict.fromkeys(_values(fields, key)))
    if len(values) > 1:
        raise InvalidInput(f"The form field {key!r} was sent more than once with different values.")
    return values[0] if values else None


def _text(fields: Mapping[str, list[str]], key: str) -> str | None:
    """First value of an advisory text field, NULs escaped as PyPI does (Postgres refuses them)."""
    values = _values(fields, key)
    return values[0].replace("\x00", "\\x00") if values else None


def _merged(fields: Mapping[str, list[str]], keys: Iterable[str]) -> list[str]:
    merged = (v.replace("\x00", "\\x00") for key in keys for v in _values(fields, key))
    return list(dict.fromkeys(merged))


def _invalid(key: str, message: str) -> InvalidInput:
    return InvalidInput(f"Invalid value for {key}. Error: {message}")


def _check_action(fields: Mapping[str, list[str]]) -> None:
    action = _single(fields, ":action")
    if action == "file_upload":
        return
    if action in _GONE_ACTIONS:
        raise Gone(_GONE_ACTIONS[action])
    if action is None:
        raise InvalidInput("Missing ':action' form field; expected 'file_upload'.")
    raise InvalidInput(f"Unsupported ':action' {shown(action)}; expected 'file_upload'.")


def _check_filetype(fields: Mapping[str, list[str]]) -> tuple[FileType, str]:
    filetype = _single(fields, "filetype")
    if filetype is None:
        raise _invalid("filetype", "This field is required.")
    if filetype not in ("bdist_wheel", "sdist"):
        raise _invalid(
            "filetype",
            f"Use a known file type. {shown(filetype)} is not accepted: upload a wheel "
            "(bdist_wheel) or an sdist.",
        )
    pyversion = _single(fields, "pyversion")
    if filetype == "sdist":
        if pyversion is None:
            pyversion = "source"
        elif pyversion != "source":
            raise InvalidInput("Use 'source' as Python version for an sdist.")
    elif pyversion is None:
        raise InvalidInput("Python version is required for binary distribution uploads.")
    return cast(FileType, filetype), pyversion  # checked against both values above


def _check_digests(fields: Mapping[str, list[str]]) -> dict[str, str | None]:
    digests: dict[str, str | None] = {}
    for key, (pattern, label) in _DIGESTS.items():
        value = _single(fields, key)
        if value is not None and pattern.fullmatch(value) is None:
            raise _invalid(key, f"Use a valid, hex-encoded, {label} message digest.")
        digests[key] = value.lower() if value is not None else None
    if not any(digests.values()):
        raise InvalidInput("Include at least one message digest.")
    return digests


def _requires_python(fields: Mapping[str, list[str]]) -> str | None:
    # pdm sends it as a list; several values mean all of them apply (a comma is an AND).
    values = list(dict.fromkeys(v.strip() for v in _values(fields, "requires_python")))
    value = ", ".join(v for v in values if v) or None
    if value is not None:
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise _invalid(
                "requires_python", f"{shown(value)} is not a valid version specifier set."
            ) from None
    return value


def parse_upload_form_fields(fields: Mapping[str, list[str]]) -> UploadForm:
    """Validate the non-file fields of a legacy upload and return them as an `UploadForm`.

    Raises `Gone` for the retired actions (`submit`, `submit_pkg_info`, `doc_upload`) and
    `InvalidInput` for: another or missing `:action`, a `protocol_version` other than "1",
    a missing or invalid `name`/`version`, a `filetype` other than bdist_wheel/sdist, a
    `pyversion` that does not fit the filetype, malformed digests or none at all, an
    unsupported `metadata_version`, an invalid `requires_python`. Unknown fields are ignored.
    """
    _check_action(fields)
    protocol = _single(fields, "protocol_version") or "1"
    if protocol != "1":
        raise InvalidInput("Unknown protocol version.")

    name = _single(fields, "name")
    if name is None:
        raise _invalid("name", "This field is required.")
    validate_project_name(name)
    version = _single(fields, "version")
    if version is None:
        raise _invalid("version", "This field is required.")
    validate_version(version)

    filetype, pyversion = _check_filetype(fields)
    digests = _check_digests(fields)
    metadata_version = _single(fields, "metadata_version")
    warnings = check_metadata_version(metadata_version) if metadata_version else []

    keywords = _merged(fields, ["keywords"])  # one comma-joined string, or repeated parts
    advisory: dict[str, Any] = {key: _text(fields, key) for key in _TEXT_FIELDS}
    advisory.update({key: _merged(fields, spellings) for key, spellings in _LIST_FIELDS.items()})
    for key in ("import_names", "import_namespaces"):
        # Absent (rather than "no import names") unless a client sent a value: the form cannot
        # tell PEP 794's explicit empty `Import-Name:` from a client sending every field.
        advisory[key] = advisory[key] or None
    return UploadForm(
        name=name,
        version=version,
        filetype=filetype,
        pyversion=pyversion,
        sha256_digest=digests["sha256_digest"],
        blake2_256_digest=digests["blake2_256_digest"],
        md5_digest=digests["md5_digest"],
        metadata_version=metadata_version,
        protocol_version=protocol,
        keywords=", ".join(keywords) if keywords else None,
        requires_python=_requires_python(fields),
        warnings=warnings,
        **advisory,
    )


def verify_digests(form: UploadForm, *, sha256: str, blake2_256: str, md5: str) -> None:
    """Raise `InvalidInput` unless every digest the client sent equals the computed one.

    Compares with `hmac.compare_digest` (as PyPI does) after lowercasing the computed hex.
    A form without any digest is refused too, so callers cannot skip the check by accident.
    """
    computed = {"sha256": sha256, "blake2_256": blake2_256, "md5": md5}
    sent = form.digests
    if not sent:
        raise InvalidInput("Include at least one message digest.")
    if not all(
        hmac.compare_digest(value.encode("ascii"), computed[key].lower().encode("ascii"))
        for key, value in sent.items()
    ):
        raise InvalidInput(
            "The digest supplied does not match a digest calculated from the uploaded file."
        )
