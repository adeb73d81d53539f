"""Parsing upstream project pages (PEP 691 JSON or PEP 503 HTML) into sanitized `ProjectPage`s.

Only the proxy parses upstream pages. Everything an upstream sends is untrusted: links,
filenames, hashes, requires-python and status markers are validated here before anything is
stored or re-emitted in our own markup.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from wheelyard.shared.errors import UpstreamError
from wheelyard.shared.packaging.simple.model import (
    HTML_V1,
    JSON_V1,
    PROJECT_STATUSES,
    TEXT_HTML,
    ProjectPage,
    SimpleFile,
    sort_versions,
)

# What a distribution filename may look like. Names, PEP 440 versions (with `!` epochs and `+`
# local parts) and wheel tags use only these characters; we re-emit the name in our own URLs
# and markup, so anything else (`/`, `\`, controls, quotes, spaces) is refused
# (docs/standards.md §2).
_DIST_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*\.(?:whl|tar\.gz|zip)")
_MAX_FILENAME = 255
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _plausible_filename(name: str) -> bool:
    return (
        len(name) <= _MAX_FILENAME
        and ".." not in name
        and _DIST_FILENAME.fullmatch(name) is not None
    )


def _filename_for(declared: str, url_path: str) -> str | None:
    """The filename to list for a link, or None to skip it.

    pip and uv take an HTML file's name from the URL's last path segment, percent-decoded
    (docs/standards.md §3: `torch-2.1.0%2Bcu121-...whl` is `torch-2.1.0+cu121-...whl`); PEP 503
    says the anchor text (or JSON `filename`) must be the same. When both are plausible and
    disagree the link is ambiguous, so it is dropped rather than served under a name its bytes
    may not have.
    """
    declared = declared.strip()
    if "%" in declared:
        declared = unquote(declared)  # `%` never occurs in a real distribution filename.
    from_url = unquote(url_path.rsplit("/", 1)[-1])
    declared_ok = _plausible_filename(declared)
    from_url_ok = _plausible_filename(from_url)
    if declared_ok and from_url_ok:
        return declared if declared == from_url else None
    if declared_ok:
        return declared  # e.g. `/download?id=1`: the proxy rewrites the URL anyway.
    if from_url_ok:
        return from_url
    return None


def _clean_text(value: str | None) -> str | None:
    if value is None:
        return None
    return _CONTROL_CHARS.sub("", value)


def _sha256_from(digests: dict[str, str] | None) -> str | None:
    # Only sha256 survives: it is what we verify downloads with and what uv accepts
    # (docs/standards.md §3).
    if not digests:
        return None
    value = digests.get("sha256")
    if value is None or not _SHA256_HEX.fullmatch(value):
        return None
    return value.lower()


@lru_cache(maxsize=4096)
def _valid_requires_python(value: str) -> bool:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return False
    return True


def _requires_python_from(value: str | None) -> str | None:
    # An invalid specifier is ignored by pip anyway (docs/standards.md §3); dropping it also
    # removes any markup an upstream smuggled into the attribute.
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


def _media_type_of(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _charset_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _project_from_url(base_url: str) -> str:
    segments = [s for s in urlsplit(base_url).path.split("/") if s]
    return unquote(segments[-1]) if segments else ""


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _known_status(value: object) -> str | None:
    # PEP 792 statuses only; an unknown marker is ignored rather than failing the whole page.
    status = str(value).strip().lower() if value is not None else None
    return status if status in PROJECT_STATUSES else None


def _harmonize_json_files(data: Any) -> None:
    """Let pypi-simple see `core-metadata` for upstreams that only send the PEP 658 name."""
    if not isinstance(data, dict):
        return
    files = data.get("files")
    if not isinstance(files, list):
        return
    for entry in files:
        if not isinstance(entry, dict) or "core-metadata" in entry:
            continue
        for legacy in ("dist-info-metadata", "data-dist-info-metadata"):
            if legacy in entry:
                entry["core-metadata"] = entry[legacy]
                break


def _simple_file_from(
    package: Any, *, core_metadata_fallback: str | None = None
) -> SimpleFile | None:
    """Sanitize one pypi-simple `DistributionPackage` into a `SimpleFile`, or None to skip it."""
    # Everything after the first `#` is the fragment (RFC 3986); pypi-simple already moved an
    # HTML hash fragment into `digests`, a JSON `url` may still carry one.
    absolute = package.url.partition("#")[0]
    split = urlsplit(absolute)
    # javascript:, file:, data: and friends never become download URLs.
    if split.scheme not in ("http", "https") or not split.netloc:
        return None
    if _CONTROL_CHARS.search(absolute) or " " in absolute:
        return None
    filename = _filename_for(package.filename, split.path)
    if filename is None:
        return None
    core_sha256 = _sha256_from(package.metadata_digests)
    has_core = bool(package.has_metadata)
    if package.has_metadata is None and core_metadata_fallback is not None:
        # HTML pages that only carry the PEP 658 attribute name (PEP 714).
        fallback = core_metadata_fallback.strip()
        algorithm, _, value = fallback.partition("=")
        if algorithm.lower() == "sha256":
            core_sha256 = _sha256_from({"sha256": value})
        has_core = bool(value) or fallback.lower() == "true"
    if core_sha256 is not None:
        has_core = True
    yanked: bool | str = False
    if package.is_yanked:
        # Mirrors MUST carry the yank flag through (PEP 592); a bare or empty attribute is
        # "yanked without a reason" (uv's reading, the safe one).
        reason = (_clean_text(package.yanked_reason) or "").strip()
        yanked = reason or True
    size = package.size if isinstance(package.size, int) and package.size >= 0 else None
    return SimpleFile(
        filename=filename,
        url=absolute,
        sha256=_sha256_from(package.digests),
        size=size,
        upload_time=_utc(package.upload_time),
        requires_python=_requires_python_from(package.requires_python),
        yanked=yanked,
        core_metadata_sha256=core_sha256,
        has_core_metadata=has_core,
        upstream_url=absolute,
    )


def parse_upstream_page(
    body: bytes, content_type: str, base_url: str, *, project: str | None = None
) -> ProjectPage:
    """Parse an upstream project page (PEP 691 JSON or PEP 503 HTML) into a sanitized page.

    `base_url` is the final URL the page was fetched from (after redirects): relative links
    resolve against it (and against a `<base href>`). `project` names the project when the
    page itself does not (HTML); by default it is the last path segment of `base_url`.

    Promises about the result (docs/standards.md §9):
    - `name` is normalized; `versions` are the upstream's plus every listed file's version.
    - Only http(s) links whose filename is a plausible `.whl`, `.tar.gz` or `.zip` distribution
      name are kept; percent-encoded names are decoded (`%2B` -> `+`).
    - Each file's `url` and `upstream_url` are the absolute upstream URL without fragment; the
      proxy rewrites `url` to point through Wheelyard.
    - Only sha256 digests are kept (others are dropped; a file without one has sha256=None);
      requires-python is kept when it is a valid specifier; yanked and its reason, core-metadata
      (sha256, or the bare `true` marker), size and upload-time (UTC) are carried through.
    - A quarantined page has no files.

    Raises `UpstreamError` for an unsupported content type, malformed JSON or an unsupported
    repository major version.
    """
    # Imported here: only the proxy parses upstream pages, and pypi-simple pulls in requests,
    # BeautifulSoup and pydantic models the index service never needs.
    from pydantic import ValidationError
    from pypi_simple import DistributionPackage, RepositoryPage, UnsupportedRepoVersionError
    from pypi_simple import ProjectPage as UpstreamPage

    media = _media_type_of(content_type)
    hint = project or _project_from_url(base_url)
    files: list[SimpleFile] = []
    versions: list[str] = []
    status: str | None
    reason: str | None
    try:
        # pypi-simple warns about a newer minor api-version and BeautifulSoup about odd
        # markup; neither is actionable for one upstream page, and both would be raised as
        # errors under a `-W error` test run. (catch_warnings swaps process-wide state; at
        # worst a warning from another thread is also muted for these few milliseconds.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if media == JSON_V1:
                data = json.loads(body)
                _harmonize_json_files(data)
                page_status = data.get("project-status") if isinstance(data, dict) else None
                if isinstance(page_status, dict) and not _known_status(page_status.get("status")):
                    data.pop("project-status", None)
                parsed = UpstreamPage.from_json_data(data, base_url=base_url)
                name = parsed.project
                versions.extend(parsed.versions or ())
                status = _known_status(parsed.status)
                reason = parsed.status_reason
                for package in parsed.packages:
                    simple = _simple_file_from(package)
                    if simple is not None:
                        files.append(simple)
                        if package.version:
                            versions.append(package.version)
            elif media in (HTML_V1, TEXT_HTML):
                html_page = RepositoryPage.from_html(
                    body, base_url=base_url, from_encoding=_charset_of(content_type)
                )
                name = hint
                meta = html_page.pypi_meta
                status = _known_status(_first(meta.get("project-status")))
                reason = _first(meta.get("project-status-reason"))
                for link in html_page.links:
                    package = DistributionPackage.from_link(link, hint or None)
                    legacy = link.get_str_attrib("data-dist-info-metadata")
                    simple = _simple_file_from(package, core_metadata_fallback=legacy)
                    if simple is not None:
                        files.append(simple)
                        if package.version:
                            versions.append(package.version)
            else:
                raise UpstreamError(f"upstream sent an unsupported Content-Type: {content_type!r}")
    except UnsupportedRepoVersionError as exc:
        raise UpstreamError(f"upstream page has an unsupported api-version: {exc}") from exc
    except (ValueError, ValidationError, AssertionError, TypeError) as exc:
        # json.JSONDecodeError and pydantic errors are ValueErrors; pypi-simple asserts on
        # attribute types that odd markup can violate.
        raise UpstreamError(f"upstream page could not be parsed: {exc}") from exc

    normalized = canonicalize_name(name or hint)
    if status == "quarantined":
        files = []
    return ProjectPage(
        name=normalized,
        files=files,
        versions=sort_versions(versions),
        status=status,
        status_reason=_clean_text(reason) if status is not None else None,
    )
