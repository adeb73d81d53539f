"""Core metadata (METADATA / PKG-INFO): parse, validate what we rely on (docs/standards.md §8).

We parse leniently with `packaging.metadata.parse_email` and then validate, strictly, the fields
the registry depends on (Metadata-Version, Name, Version, Requires-Python, Requires-Dist,
Summary). Everything else is kept as written: PyPI's extra rules (known classifiers, renderable
descriptions, valid e-mails) are policy for the service, not for this parser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.names import (
    normalize_name,
    shown,
    validate_project_name,
    validate_version,
)

# PyPI's accepted set plus 2.6 (PEP 808, no new fields). 2.0 was never standardised
# (docs/standards.md §8).
KNOWN_METADATA_VERSIONS = ("1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6")
MAX_SUMMARY_LENGTH = 512  # PyPI's limit (docs/standards.md §8)

# distutils wrote "UNKNOWN" for unset fields; PyPI deletes such values (docs/standards.md §7).
UNKNOWN = "UNKNOWN"

# The single-use text fields of core metadata (the legacy upload form sends them too).
TEXT_FIELDS = (
    "summary",
    "description",
    "description_content_type",
    "home_page",
    "download_url",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license",
    "license_expression",
)
_LIST_FIELDS = (
    "license_files",
    "classifiers",
    "requires_dist",
    "requires_external",
    "provides_extra",
    "provides_dist",
    "obsoletes_dist",
    "platforms",
    "supported_platforms",
    "dynamic",
    "import_names",
    "import_namespaces",
)
# Header name as parse_email leaves it in `unparsed` when an older `packaging` does not know it.
_FALLBACK_HEADERS = {"import_names": "import-name", "import_namespaces": "import-namespace"}
# Fields whose duplication or bad encoding we cannot paper over.
_CRITICAL_HEADERS = ("metadata-version", "name", "version", "requires-python", "summary")


def check_metadata_version(value: str) -> list[str]:
    """Validate a `Metadata-Version` value; return warnings (empty if fully known).

    Accepts 1.0, 1.1, 1.2 and 2.1 to 2.6; an unknown newer 2.x minor is accepted with a warning
    (the spec: warn on an unknown minor, fail on an unknown major). Rejects 2.0, other 1.x,
    other majors and anything that is not `<int>.<int>`, with `InvalidInput`.
    """
    value = value.strip() if isinstance(value, str) else ""
    if not value:
        raise InvalidInput("Invalid metadata: 'Metadata-Version' is required.")
    if value in KNOWN_METADATA_VERSIONS:
        return []
    if value == "2.0":
        raise InvalidInput(
            "Invalid metadata: Metadata-Version 2.0 was never standardised; "
            f"use one of {', '.join(KNOWN_METADATA_VERSIONS)}."
        )
    major, dot, minor = value.partition(".")
    numeric = dot and (major + minor).isascii() and major.isdigit() and minor.isdigit()
    if numeric and int(major) == 2 and int(minor) > 6:
        return [f"Metadata-Version {value} is newer than this server knows (2.6)."]
    raise InvalidInput(
        f"Invalid metadata: unsupported Metadata-Version {shown(value)}; "
        f"use one of {', '.join(KNOWN_METADATA_VERSIONS)}."
    )


@dataclass(frozen=True)
class ParsedMetadata:
    """Core metadata with the registry's fields validated and `UNKNOWN` values dropped.

    `version` is the string as written and `normalized_version` its `str(Version)` form.
    List fields are empty lists when absent; `import_names` is `None` when the field is
    absent and `[]` when it was given empty (PEP 794 gives those different meanings).
    `warnings` are messages for the uploader that did not stop the parse.
    """

    metadata_version: str
    name: str
    version: str
    normalized_name: str
    normalized_version: str
    summary: str | None = None
    description: str | None = None
    description_content_type: str | None = None
    keywords: list[str] = field(default_factory=list)
    home_page: str | None = None
    download_url: str | None = None
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license: str | None = None
    license_expression: str | None = None
    license_files: list[str] = field(default_factory=list)
    classifiers: list[str] = field(default_factory=list)
    requires_dist: list[str] = field(default_factory=list)
    requires_python: str | None = None
    requires_external: list[str] = field(default_factory=list)
    provides_extra: list[str] = field(default_factory=list)
    provides_dist: list[str] = field(default_factory=list)
    obsoletes_dist: list[str] = field(default_factory=list)
    project_urls: dict[str, str] = field(default_factory=dict)
    platforms: list[str] = field(default_factory=list)
    supported_platforms: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)
    import_names: list[str] | None = None
    import_namespaces: list[str] | None = None
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Return every field as JSON-serializable values (str, list, dict, None)."""
        return asdict(self)


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"Invalid metadata: not valid UTF-8 (byte {exc.start}). Core metadata must be "
            "UTF-8 encoded."
        ) from None
    # A BOM would glue itself to the first header name; the stored bytes keep it (PEP 658).
    return text.removeprefix("\ufeff")


def _clean_str(value: object) -> str | None:
    if not isinstance(value, str) or value.strip() == UNKNOWN:
        return None
    return value


def _clean_list(values: object) -> list[str]:
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, str) and v.strip() != UNKNOWN]


def _validate_requires_python(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise InvalidInput(
            f"Invalid metadata: 'Requires-Python' {shown(value)} is not a valid version "
            "specifier set."
        ) from None
    return value


def _validate_requires_dist(values: list[str]) -> list[str]:
    for value in values:
        try:
            Requirement(value)
        except InvalidRequirement as exc:
            raise InvalidInput(
                f"Invalid metadata: 'Requires-Dist' {shown(value)} is not a valid requirement "
                f"({exc})."
            ) from None
    return values


def _validate_summary(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_SUMMARY_LENGTH:
        raise InvalidInput(
            f"Invalid metadata: 'Summary' is longer than {MAX_SUMMARY_LENGTH} characters."
        )
    if "\n" in value or "\r" in value:
        # PyPI: "Use a single line only." A folded header keeps its line break.
        raise InvalidInput("Invalid metadata: 'Summary' must be a single line.")
    return value


def parse_core_metadata(raw: bytes) -> ParsedMetadata:
    """Parse METADATA/PKG-INFO bytes into `ParsedMetadata`, or raise `InvalidInput`.

    Requires UTF-8, a supported Metadata-Version (see `check_metadata_version`), a valid
    `Name` and `Version` (each exactly once), a valid `Requires-Python` and valid `Requires-Dist`
    entries if present, a single-line `Summary` of at most 512 characters, and no `Name` or
    `Version` in `Dynamic`. Unknown fields, and fields newer than the declared version
    (e.g. 2.5 `Import-Name`), are tolerated.
    """
    parsed, unparsed = parse_email(_decode(raw))
    fields: dict[str, Any] = dict(parsed)
    for header in _CRITICAL_HEADERS:
        if header in unparsed:
            raise InvalidInput(f"Invalid metadata: '{header.title()}' must appear exactly once.")
    warnings = check_metadata_version(fields.get("metadata_version", ""))

    name = fields.get("name")
    if not name:
        raise InvalidInput("Invalid metadata: 'Name' is required.")
    validate_project_name(name)
    # `Version` itself tolerates surrounding blanks in a header (PyPI accepts them too).
    version = (fields.get("version") or "").strip()
    if not version:
        raise InvalidInput("Invalid metadata: 'Version' is required.")
    parsed_version = validate_version(version)

    values: dict[str, Any] = {key: _clean_str(fields.get(key)) for key in TEXT_FIELDS}
    values.update({key: _clean_list(fields.get(key)) for key in _LIST_FIELDS})
    for key, header in _FALLBACK_HEADERS.items():
        # An older `packaging` leaves PEP 794 fields in `unparsed`; take them from there.
        if key not in fields and header in unparsed:
            fields[key] = [v for v in unparsed.pop(header) if v.strip()]
        values[key] = _clean_list(fields[key]) if key in fields else None

    if "description" in unparsed:
        # Both a Description header and a body: keep the body (the 2.1+ place for it).
        values["description"] = unparsed.pop("description")[-1]
        warnings.append("Both a 'Description' header and a message body: the body was used.")
    if "project-url" in unparsed:
        warnings.append("Project-URL labels are repeated: the Project-URL fields were ignored.")

    dynamic = {d.strip().lower() for d in values["dynamic"]}
    for forbidden in ("name", "version", "metadata-version"):
        if forbidden in dynamic:
            raise InvalidInput(f"Invalid metadata: '{forbidden.title()}' must not be Dynamic.")
    values["summary"] = _validate_summary(values["summary"])
    values["requires_dist"] = _validate_requires_dist(values["requires_dist"])

    return ParsedMetadata(
        metadata_version=fields["metadata_version"].strip(),
        name=name,
        version=version,
        normalized_name=normalize_name(name),
        normalized_version=str(parsed_version),
        keywords=[k for k in _clean_list(fields.get("keywords")) if k],
        requires_python=_validate_requires_python(_clean_str(fields.get("requires_python"))),
        project_urls={
            label: url
            for label, url in (fields.get("project_urls") or {}).items()
            if url.strip() != UNKNOWN
        },
        warnings=warnings,
        **values,
    )
