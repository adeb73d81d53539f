"""The simple repository API: page models, HTML/JSON rendering, negotiation, upstream parsing.

Everything here is a pure function of its inputs (no database, no HTTP framework), so the index
service (hosted pages) and the proxy-cache service (upstream pages re-emitted by us) share one
implementation of the wire format described in the standards digest, sections 2, 3, 4 and 9.

Rendering is on the hot path of every `pip install` (the target is thousands of project pages a
second on two cores), so pages are built with one `"".join`, per-file fragments (already
escaped) and sorted version lists are memoized in bounded LRU caches, and JSON strings go through
the C encoder. Negotiation results are memoized per `Accept` string because installers send the
same header on every request. `bench/render_bench.py` measures all of this.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelyard.shared.errors import UpstreamError

__all__ = [
    "API_VERSION",
    "HTML_V1",
    "JSON_V1",
    "PROJECT_STATUSES",
    "TEXT_HTML",
    "ProjectList",
    "ProjectPage",
    "SimpleFile",
    "content_type_for",
    "etag_for",
    "if_none_match_matches",
    "negotiate",
    "parse_upstream_page",
    "render_index_html",
    "render_index_json",
    "render_project_html",
    "render_project_json",
    "sort_versions",
]

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

#: The api-version we claim. 1.4 = versions/size/upload-time (1.1) + project-status (1.4);
#: HTML is frozen at 1.4 forever (PEP 833, digest §2.3), and we never claim PEP 708 (§3.3).
API_VERSION = "1.4"

#: PEP 691 media types (digest §3.1).
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

#: PEP 792 project status markers (digest §3.3).
PROJECT_STATUSES = frozenset({"active", "archived", "quarantined", "deprecated"})

_CONTENT_TYPES = {
    TEXT_HTML: "text/html; charset=utf-8",
    HTML_V1: HTML_V1,
    JSON_V1: JSON_V1,
}


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimpleFile:
    """One distribution file as listed on a project page.

    - `url` is emitted verbatim (relative or absolute); keep it query-free (digest §7.5) and
      without a fragment: the `#sha256=` fragment is added by the HTML renderer.
    - `sha256` is lowercase hex, or None when an upstream gave no sha256 (then HTML has no
      fragment and JSON has `"hashes": {}`).
    - `size` is the byte count, or None when unknown (upstream HTML pages do not carry it).
    - `upload_time` is converted to UTC; a naive datetime is taken to be UTC already.
    - `yanked` is False, True (yanked without a reason) or the reason string (digest §4).
    - `core_metadata_sha256` is the sha256 of the PEP 658 `.metadata` bytes; when the metadata
      exists but its sha256 is unknown (upstream said `true` or gave another algorithm), set
      `has_core_metadata=True` and leave the hash None. A hash implies `has_core_metadata`.
    - `upstream_url` is the absolute URL the proxy fetches the file from (None for hosted files).
    """

    filename: str
    url: str
    sha256: str | None
    size: int | None
    upload_time: datetime | None = None
    requires_python: str | None = None
    yanked: bool | str = False
    core_metadata_sha256: str | None = None
    has_core_metadata: bool = False
    upstream_url: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project detail page: normalized `name`, its files and its versions.

    `versions` may be unsorted or contain duplicates; the renderers emit them deduplicated in
    PEP 440 order. Callers must make sure every file's version is listed (checklist item 18).
    `status` is one of `PROJECT_STATUSES` or None (no marker); a `quarantined` page is rendered
    with no files whatever `files` holds (PEP 792, digest §3.3).
    """

    name: str
    files: Sequence[SimpleFile]
    versions: Sequence[str]
    status: str | None = None
    status_reason: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in PROJECT_STATUSES:
            raise ValueError(f"unknown project status {self.status!r}")


@dataclass(frozen=True, slots=True)
class ProjectList:
    """The root page: `(display_name, normalized_name)` pairs, rendered in the given order."""

    projects: Sequence[tuple[str, str]] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=16384)
def _version_key(raw: str) -> tuple[str, tuple[int, Any]]:
    """(normalized string, sort key) for one version string; memoized because the same
    versions are sorted on every render of a page."""
    try:
        parsed = Version(raw)
    except InvalidVersion:
        # Only upstream pages can carry legacy versions; keep them, sorted before all PEP 440
        # versions (as old setuptools did), rather than silently dropping a listed release.
        return raw, (0, raw)
    return str(parsed), (1, parsed)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Return the versions normalized (`str(Version(v))`), deduplicated and in PEP 440 order.

    Strings that are not PEP 440 versions are kept as they are and sorted first.
    """
    return list(_sorted_versions(tuple(versions)))


@lru_cache(maxsize=1024)
def _sorted_versions(versions: tuple[str, ...]) -> tuple[str, ...]:
    # Memoized per page's version list: Version comparisons run in Python and dominate a
    # warm JSON render otherwise; the tuple's strings are shared with the caller's.
    keyed: dict[str, tuple[int, Any]] = {}
    for raw in versions:
        normalized, key = _version_key(raw)
        keyed[normalized] = key
    return tuple(sorted(keyed, key=keyed.__getitem__))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _esc(value: str) -> str:
    # quote=True also escapes `"` and `'`, so a value can never close its attribute (§2.3).
    return escape(value, quote=True)


def _format_upload_time(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (PEP 700, digest §3.3, checklist item 17)."""
    offset = value.utcoffset()
    if offset:
        value = value.astimezone(UTC)
    # isoformat() is C code and faster than strftime on this per-file hot path; its first 26
    # characters are the date and time with microseconds (years are zero-padded to 4 digits),
    # whatever offset suffix follows. Naive values are taken to be UTC already.
    return value.isoformat(timespec="microseconds")[:26] + "Z"


_HTML_PROLOGUE = (
    "<!DOCTYPE html>\n<html>\n<head>\n"
    f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
)
_HTML_EPILOGUE = "</body>\n</html>\n"


def _render_html_anchor(f: SimpleFile) -> str:
    # html.escape with quote=True on every value: nothing from a caller or an upstream can close
    # the attribute it sits in (digest §2.3). Calls are merged where possible: this runs once
    # per file per render.
    sha256 = f.sha256
    # Always sha256: uv fails the whole page on an algorithm it does not know (digest §2.3).
    href = escape(f"{f.url}#sha256={sha256}" if sha256 else f.url, True)
    attrs = ""
    if f.requires_python:
        # `>=3.8,<4` must appear as `&gt;=3.8,&lt;4` (checklist item 23).
        attrs = f' data-requires-python="{escape(f.requires_python, True)}"'
    if f.core_metadata_sha256:
        # PEP 714 name plus the PEP 658 name with the identical value, as PyPI does (§2.3).
        value = escape(f.core_metadata_sha256, True)
        attrs += f' data-core-metadata="sha256={value}" data-dist-info-metadata="sha256={value}"'
    elif f.has_core_metadata:
        attrs += ' data-core-metadata="true" data-dist-info-metadata="true"'
    yanked = f.yanked
    if yanked is True or yanked == "":
        # Never a bare `data-yanked`: pip reads it as not yanked, uv as yanked (digest §2.3).
        attrs += ' data-yanked=""'
    elif yanked:
        attrs += f' data-yanked="{escape(yanked, True)}"'
    return f'<a href="{href}"{attrs}>{escape(f.filename, True)}</a><br/>\n'


def _shows_files(page: ProjectPage) -> bool:
    # A quarantined project must list no files (PEP 792, digest §3.3 and §9).
    return page.status != "quarantined"


def render_project_html(page: ProjectPage) -> bytes:
    """Render a PEP 503 project page (api-version 1.4) as UTF-8 bytes.

    One anchor per file whose text is the filename; every attribute value is HTML-escaped; the
    project-status metas appear only for a status other than `active` (digest §2.3).
    """
    name = _esc(page.name)
    parts = [_HTML_PROLOGUE]
    if page.status is not None and page.status != "active":
        parts.append(f'<meta name="pypi:project-status" content="{_esc(page.status)}">\n')
        if page.status_reason:
            parts.append(
                f'<meta name="pypi:project-status-reason" content="{_esc(page.status_reason)}">\n'
            )
    parts.append(f"<title>Links for {name}</title>\n</head>\n<body>\n<h1>Links for {name}</h1>\n")
    if _shows_files(page):
        parts.extend(map(_html_anchor, page.files))
    parts.append(_HTML_EPILOGUE)
    return "".join(parts).encode("utf-8")


# The C implementation behind json.dumps for one string: quoted, escaped, ASCII-only (every
# non-ASCII character as \\uXXXX, which also covers U+2028/U+2029).
_json_str = encode_basestring_ascii


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _dump_json(data: dict[str, Any]) -> bytes:
    # ensure_ascii output is plain ASCII, so encoding it is a memcpy.
    return _dumps(data).encode("ascii")


def _render_json_file(f: SimpleFile) -> str:
    """One entry of `files`, as JSON text.

    Assembled by hand from pieces the C string encoder produces: about twice as fast as
    building a dict per file and handing the list to `json.dumps` (bench/render_bench.py).
    """
    sha256 = f.sha256
    # The hashes object is required even when empty (digest §3.3).
    hashes = f'{{"sha256":{_json_str(sha256)}}}' if sha256 else "{}"
    requires_python = (
        f',"requires-python":{_json_str(f.requires_python)}' if f.requires_python else ""
    )
    # Only `core-metadata`: a `dist-info-metadata` key crashes pip 22.3-23.1 (PEP 714, §3.3).
    if f.core_metadata_sha256:
        core_metadata = f'{{"sha256":{_json_str(f.core_metadata_sha256)}}}'
    else:
        core_metadata = "true" if f.has_core_metadata else "false"
    # `yanked` is false, true, or a non-empty reason (digest §3.3): "" means "no reason".
    yanked = f.yanked
    if yanked is True or yanked == "":
        yanked_json = "true"
    else:
        yanked_json = _json_str(yanked) if yanked else "false"
    size = f',"size":{int(f.size)}' if f.size is not None else ""
    upload_time = (
        f',"upload-time":"{_format_upload_time(f.upload_time)}"'
        if f.upload_time is not None
        else ""
    )
    return (
        f'{{"filename":{_json_str(f.filename)},"url":{_json_str(f.url)},"hashes":{hashes}'
        f'{requires_python},"core-metadata":{core_metadata},"yanked":{yanked_json}'
        f"{size}{upload_time}}}"
    )


# Per-file fragments are memoized: a page is re-rendered when one file changes (an upload, a
# yank) and every other file's fragment is then a cache hit; `SimpleFile` is frozen, so equal
# files render equally. Each entry is about 1 KiB with its key, so a cache holds at most ~8 MiB
# (four 2,000-file pages, or many ordinary ones).
_FRAGMENT_CACHE_SIZE = 8192
_html_anchor = lru_cache(maxsize=_FRAGMENT_CACHE_SIZE)(_render_html_anchor)
_json_file = lru_cache(maxsize=_FRAGMENT_CACHE_SIZE)(_render_json_file)


def render_project_json(page: ProjectPage) -> bytes:
    """Render a PEP 691 project page (api-version 1.4) as compact JSON bytes.

    Keys per digest §3.3: `name` (normalized), `versions` (sorted, deduplicated), `files`
    (`hashes`, `requires-python` only when set, `core-metadata`, `yanked`, `size`, `upload-time`
    when known) and `project-status` only when a status is set. The output is ASCII.
    """
    head: dict[str, Any] = {"meta": {"api-version": API_VERSION}, "name": page.name}
    if page.status is not None:
        status: dict[str, str] = {"status": page.status}
        if page.status_reason:
            status["reason"] = page.status_reason
        head["project-status"] = status
    head["versions"] = sort_versions(page.versions)
    files = ",".join(map(_json_file, page.files)) if _shows_files(page) else ""
    # `head` always ends with the versions list, so its closing brace is where `files` goes.
    return f'{_dumps(head)[:-1]},"files":[{files}]}}'.encode("ascii")


def render_index_html(project_list: ProjectList) -> bytes:
    """Render the root page: one `<a href="normalized/">Display</a>` per project (§2.2).

    The relative href keeps working behind any path prefix.
    """
    parts = [_HTML_PROLOGUE, "<title>Simple index</title>\n</head>\n<body>\n"]
    parts.extend(
        f'<a href="{_esc(normalized)}/">{_esc(display)}</a><br/>\n'
        for display, normalized in project_list.projects
    )
    parts.append(_HTML_EPILOGUE)
    return "".join(parts).encode("utf-8")


def render_index_json(project_list: ProjectList) -> bytes:
    """Render the root page as PEP 691 JSON: `{"meta": ..., "projects": [{"name": display}]}`."""
    return _dump_json(
        {
            "meta": {"api-version": API_VERSION},
            "projects": [{"name": display} for display, _ in project_list.projects],
        }
    )


# --------------------------------------------------------------------------------------------
# Content negotiation (digest §3.2)
# --------------------------------------------------------------------------------------------

_OFFERS = (JSON_V1, HTML_V1, TEXT_HTML)
_ALIASES = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: TEXT_HTML,
    # The meta-version asks for the latest we have; we answer with the concrete type (§3.1).
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Ties among explicitly named types: most expressive first (§3.2 step 4).
_NAMED_PREFERENCE = (JSON_V1, HTML_V1, TEXT_HTML)
# Ties won only through wildcards: HTML first, as PyPI, hatch, browsers and curl expect.
_WILDCARD_PREFERENCE = (TEXT_HTML, HTML_V1, JSON_V1)
# RFC 9110 qvalue: 0..1 with at most three decimals.
_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
_MAX_CACHED_ACCEPT = 1024

# (media type, quality) per range; specificity is derived per offer.
_Range = tuple[str, float]


def _parse_accept(header: str) -> list[_Range]:
    ranges: list[_Range] = []
    for element in header.split(","):
        media, *params = element.split(";")
        media = media.strip().lower()
        if media == "*":
            media = "*/*"  # Old Java clients send a bare `*`.
        if media.count("/") != 1:
            continue
        quality = 1.0
        valid = True
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                if _QVALUE.fullmatch(value):
                    quality = float(value)
                else:
                    valid = False  # An unparseable q drops that range, not the header.
                break  # Parameters after q are accept-extensions; they do not matter here.
        if valid:
            ranges.append((media, quality))
    return ranges


def _select(header: str) -> str | None:
    """The offer `header` prefers, or None when it accepts none of them."""
    ranges = _parse_accept(header)
    scored: list[tuple[str, float, bool]] = []
    for offer in _OFFERS:
        offer_type = offer.split("/", 1)[0]
        best_specificity = 0
        best_quality = 0.0
        for media, quality in ranges:
            if _ALIASES.get(media) == offer:
                specificity = 3
            elif media == f"{offer_type}/*":
                specificity = 2
            elif media == "*/*":
                specificity = 1
            else:
                continue
            # The most specific matching range decides (§3.2 step 3); equally specific ranges
            # (e.g. v1+json and latest+json) take the higher q.
            if specificity > best_specificity or (
                specificity == best_specificity and quality > best_quality
            ):
                best_specificity, best_quality = specificity, quality
        if best_specificity and best_quality > 0:
            scored.append((offer, best_quality, best_specificity == 3))
    if not scored:
        return None
    top = max(quality for _, quality, _ in scored)
    named = {offer for offer, quality, explicit in scored if quality == top and explicit}
    if named:
        return next(offer for offer in _NAMED_PREFERENCE if offer in named)
    tied = {offer for offer, quality, _ in scored if quality == top}
    return next(offer for offer in _WILDCARD_PREFERENCE if offer in tied)


def _negotiate(accept: str | None, format_param: str | None) -> str:
    if format_param:
        # `?format=` takes precedence over Accept (§3.1); one we cannot serve is ignored.
        chosen = _select(format_param)
        if chosen is not None:
            return chosen
    if accept is None or not accept.strip():
        return TEXT_HTML  # No header counts as `*/*`, which PyPI answers with HTML (§3.2).
    # Nothing acceptable (e.g. only `application/json`): PyPI serves its HTML default rather
    # than 406, and so do we (§3.2 step 5, checklist item 13).
    return _select(accept) or TEXT_HTML


_negotiate_cached = lru_cache(maxsize=512)(_negotiate)


def negotiate(accept: str | None, format_param: str | None = None) -> str:
    """Return the media type to serve: `JSON_V1`, `HTML_V1` or `TEXT_HTML` (never None).

    Implements digest §3.2: q-values (up to three decimals, q=0 means not acceptable), the most
    specific matching range decides each offer's quality, `latest+json`/`latest+html` map to
    the v1 types; ties among explicitly named types prefer JSON > v1+html > text/html, ties
    reached only through wildcards (or no header) give text/html, and a header that accepts
    nothing we offer gets text/html (PyPI parity, no 406). A `format_param` (the `?format=`
    query value) that names one of our types wins over `Accept`. Results are memoized per
    (accept, format) pair in a bounded LRU.
    """
    if (accept is not None and len(accept) > _MAX_CACHED_ACCEPT) or (
        format_param is not None and len(format_param) > _MAX_CACHED_ACCEPT
    ):
        # Do not let odd, huge headers occupy the cache; they are rare and still answered.
        return _negotiate(accept, format_param)
    return _negotiate_cached(accept, format_param)


def content_type_for(media: str) -> str:
    """The full `Content-Type` value for a media type returned by `negotiate`.

    `text/html; charset=utf-8` for text/html, the v1 types as they are (digest §2.3, §3.1).
    Raises ValueError for any other type: we never send `application/json` (§3.1).
    """
    try:
        return _CONTENT_TYPES[media]
    except KeyError:
        raise ValueError(f"not a simple-API media type: {media!r}") from None


# --------------------------------------------------------------------------------------------
# ETags (digest §3.5)
# --------------------------------------------------------------------------------------------


def etag_for(body: bytes) -> str:
    """A strong, quoted ETag for `body`: 128-bit BLAKE2b of the bytes, hex.

    Same bytes give the same tag in every process, so split-mode replicas agree.
    """
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')


def if_none_match_matches(header: str | None, etag: str) -> bool:
    """True when an `If-None-Match` header matches `etag`, i.e. a 304 may be sent.

    Uses the weak comparison RFC 9110 prescribes for If-None-Match: a `W/` prefix on either
    side is ignored. Handles comma-separated lists and `*`. None or an empty header never
    matches.
    """
    if not header:
        return False
    header = header.strip()
    if header == "*":
        return True
    opaque = etag[2:] if etag.startswith("W/") else etag
    return any(match.group(1) == opaque for match in _ENTITY_TAG.finditer(header))


# --------------------------------------------------------------------------------------------
# Upstream pages (digest §9)
# --------------------------------------------------------------------------------------------

# What a distribution filename may look like. Names, PEP 440 versions (with `!` epochs and `+`
# local parts) and wheel tags use only these characters; we re-emit the name in our own URLs
# and markup, so anything else (`/`, `\`, controls, quotes, spaces) is refused (digest §1.5).
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
    (digest §2.3: `torch-2.1.0%2Bcu121-...whl` is `torch-2.1.0+cu121-...whl`); the spec says the
    anchor text (or JSON `filename`) must be the same. When both are plausible and disagree the
    link is ambiguous, so it is dropped rather than served under a name its bytes may not have.
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
    # Only sha256 survives: it is what we verify downloads with and what uv accepts (§2.3).
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
        # HTML pages that only carry the PEP 658 attribute name (digest §2.3).
        fallback = core_metadata_fallback.strip()
        algorithm, _, value = fallback.partition("=")
        if algorithm.lower() == "sha256":
            core_sha256 = _sha256_from({"sha256": value})
        has_core = bool(value) or fallback.lower() == "true"
    if core_sha256 is not None:
        has_core = True
    yanked: bool | str = False
    if package.is_yanked:
        # Mirrors MUST carry the yank flag through (digest §4); a bare or empty attribute is
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

    Promises about the result (digest §9):
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
