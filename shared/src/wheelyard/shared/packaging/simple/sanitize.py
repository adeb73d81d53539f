"""Checking and cleaning what an upstream page says about one file (used by the page readers in
`upstream`): filenames, hashes, requires-python, yank reasons and status markers are validated
before anything is stored or re-emitted in our own markup (PEP 503, PEP 691, PEP 700, PEP 792)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from wheelyard.shared.memo import bytes_memo
from wheelyard.shared.packaging.simple.model import PROJECT_STATUSES, SimpleFile

# What a distribution filename may look like. Names, PEP 440 versions (with `!` epochs and `+`
# local parts) and wheel tags use only these characters; we re-emit the name in our own URLs
# and markup, so anything else (`/`, `\`, controls, quotes, spaces) is refused
# (wheel and sdist naming: PEP 427, PEP 625, PEP 440).
_DIST_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*\.(?:whl|tar\.gz|zip)")
_MAX_FILENAME = 255
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def plausible_filename(name: str) -> bool:
    """True for a plausible `.whl`, `.tar.gz` or `.zip` distribution filename (nothing we
    would re-emit in a URL or markup can hide in it)."""
    return (
        len(name) <= _MAX_FILENAME
        and ".." not in name
        and _DIST_FILENAME.fullmatch(name) is not None
    )


def _filename_for(declared: str, url_path: str) -> str | None:
    """The filename to list for a link, or None to skip it.

    pip and uv take an HTML file's name from the URL's last path segment, percent-decoded
    (PEP 503: `torch-2.1.0%2Bcu121-...whl` is `torch-2.1.0+cu121-...whl`); the spec says the
    anchor text (or JSON `filename`) must be the same. When both are plausible and disagree the
    link is ambiguous, so it is dropped rather than served under a name its bytes may not have.
    """
    declared = declared.strip()
    if "%" in declared:
        declared = unquote(declared)  # `%` never occurs in a real distribution filename.
    from_url = unquote(url_path.rsplit("/", 1)[-1])
    declared_ok = plausible_filename(declared)
    from_url_ok = plausible_filename(from_url)
    if declared_ok and from_url_ok:
        return declared if declared == from_url else None
    if declared_ok:
        return declared  # e.g. `/download?id=1`: the proxy rewrites the URL anyway.
    if from_url_ok:
        return from_url
    return None


def clean_text(value: str | None) -> str | None:
    """`value` without control characters (None stays None)."""
    if value is None:
        return None
    return _CONTROL_CHARS.sub("", value)


def sha256_from(digests: dict[str, str] | None) -> str | None:
    """The lowercase sha256 among `digests`, when there is a well-formed one."""
    # Only sha256 survives: it is what we verify downloads with and what uv accepts (§2.3).
    if not digests:
        return None
    value = digests.get("sha256")
    if value is None or not _SHA256_HEX.fullmatch(value):
        return None
    return value.lower()


@bytes_memo(1024 * 1024)
def _valid_requires_python(value: str) -> bool:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return False
    return True


def requires_python_from(value: str | None) -> str | None:
    """`value` stripped when it is a valid specifier set, else None."""
    # An invalid specifier is ignored by pip anyway (§2.3); dropping it also removes any markup
    # an upstream smuggled into the attribute.
    if not value:
        return None
    value = value.strip()
    return value if value and _valid_requires_python(value) else None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def media_type_of(content_type: str) -> str:
    """The media type of a Content-Type, lowercased, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a Content-Type, if any."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def project_from_url(base_url: str) -> str:
    """The last path segment of a page URL (the project, for HTML pages)."""
    segments = [s for s in urlsplit(base_url).path.split("/") if s]
    return unquote(segments[-1]) if segments else ""


def known_status(value: object) -> str | None:
    """A PEP 792 status, lowercased, or None for anything else."""
    # PEP 792 statuses only; an unknown marker is ignored rather than failing the whole page.
    status = str(value).strip().lower() if value is not None else None
    return status if status in PROJECT_STATUSES else None


def sanitized_file(
    *,
    declared_filename: str,
    url: str,
    sha256: str | None,
    core_sha256: str | None,
    has_core: bool,
    yanked_reason: str | None,
    is_yanked: bool,
    requires_python: str | None,
    size: Any,
    upload_time: datetime | None,
) -> SimpleFile | None:
    """One upstream file, checked and cleaned, or None to skip it. `url` is absolute."""
    # Everything after the first `#` is the fragment (RFC 3986): an HTML hash fragment was
    # already moved into the digests, a JSON `url` may still carry one.
    absolute = url.partition("#")[0]
    split = urlsplit(absolute)
    # javascript:, file:, data: and friends never become download URLs.
    if split.scheme not in ("http", "https") or not split.netloc:
        return None
    if _CONTROL_CHARS.search(absolute) or " " in absolute:
        return None
    filename = _filename_for(declared_filename, split.path)
    if filename is None:
        return None
    if core_sha256 is not None:
        has_core = True
    yanked: bool | str = False
    if is_yanked:
        # Mirrors MUST carry the yank flag through (PEP 592); a bare or empty attribute is
        # "yanked without a reason" (uv's reading, the safe one).
        yanked = (clean_text(yanked_reason) or "").strip() or True
    good_size = size if type(size) is int and size >= 0 else None
    return SimpleFile(
        filename=filename,
        url=absolute,
        sha256=sha256,
        size=good_size,
        upload_time=_utc(upload_time),
        requires_python=requires_python_from(requires_python),
        yanked=yanked,
        core_metadata_sha256=core_sha256,
        has_core_metadata=has_core,
        upstream_url=absolute,
    )
