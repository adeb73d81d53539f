"""Parsing upstream project pages (PEP 691 JSON or PEP 503 HTML) into sanitized files.

Only the proxy parses upstream pages. Everything an upstream sends is untrusted: links,
filenames, hashes, requires-python and status markers are validated here before anything is
stored or re-emitted in our own markup.

Pages are parsed as a stream (`read_upstream_page`): PyPI has project pages of tens of MB with
100,000 files, and holding one Python object per file at once made the process grow by
hundreds of MB per page, which it never gave back. JSON goes through ijson's C parser, one file
object at a time; HTML through pypi-simple's streaming link parser. Each sanitized file is
handed to the caller's `sink` as soon as it is read, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import IO, Any
from urllib.parse import urljoin

from packaging.utils import canonicalize_name

from wheelyard.shared.errors import UpstreamError
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    ProjectPage,
    SimpleFile,
    sort_versions,
)
from wheelyard.shared.packaging.simple.sanitize import (
    charset_of,
    clean_text,
    known_status,
    media_type_of,
    project_from_url,
    sanitized_file,
    sha256_from,
)


@dataclass
class PageHead:
    """What an upstream page says besides its files: the normalized name, every version
    (the listed ones and every kept file's, normalized, sorted) and the PEP 792 status."""

    name: str
    versions: list[str]
    status: str | None = None
    status_reason: str | None = None


#: Receives each kept file and the version its filename names (`listed_version`).
FileSink = Callable[[SimpleFile, str], None]

# -- PEP 691 JSON ------------------------------------------------------------------------------

_DEPTH = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}


def _take(events: Iterator[tuple[str, str, Any]], event: str, value: Any) -> Any:
    """The whole JSON value that starts with (`event`, `value`), built from `events`."""
    import ijson

    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = _DEPTH.get(event, 0)
    while depth > 0:
        _prefix, event, value = next(events)
        builder.event(event, value)
        depth += _DEPTH.get(event, 0)
    return builder.value


def _str_or_none(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise UpstreamError(f"upstream page has a non-string {what}")


def _json_file(entry: Any, base_url: str) -> SimpleFile | None:
    """One entry of a PEP 691 `files` list; malformed entries fail the page (as a schema
    check would), implausible ones are skipped."""
    if not isinstance(entry, dict):
        raise UpstreamError("upstream page has a file entry that is not an object")
    filename, url, hashes = entry.get("filename"), entry.get("url"), entry.get("hashes")
    if not isinstance(filename, str) or not isinstance(url, str) or not isinstance(hashes, dict):
        raise UpstreamError("upstream page has a file entry without filename, url or hashes")
    core = None
    for key in ("core-metadata", "dist-info-metadata", "data-dist-info-metadata"):
        if key in entry:
            core = entry[key]
            break
    core_sha256 = None
    if isinstance(core, dict):
        core_sha256 = sha256_from(core)
        has_core = True
    elif isinstance(core, bool) or core is None:
        has_core = bool(core)
    else:
        raise UpstreamError("upstream page has a malformed core-metadata value")
    yanked = entry.get("yanked", False)
    if not isinstance(yanked, bool | str):
        raise UpstreamError("upstream page has a malformed yanked value")
    upload_time = None
    raw_time = entry.get("upload-time")
    if isinstance(raw_time, str):
        try:
            upload_time = datetime.fromisoformat(raw_time)
        except ValueError:
            upload_time = None
    return sanitized_file(
        declared_filename=filename,
        url=url if url.startswith(("https://", "http://")) else urljoin(base_url, url),
        sha256=sha256_from({k: v for k, v in hashes.items() if isinstance(v, str)}),
        core_sha256=core_sha256,
        has_core=has_core,
        yanked_reason=yanked if isinstance(yanked, str) else None,
        is_yanked=yanked is not False,
        requires_python=_str_or_none(entry.get("requires-python"), "requires-python"),
        size=entry.get("size"),
        upload_time=upload_time,
    )


def _check_api_version(declared: Any) -> None:
    from pypi_simple import UnsupportedRepoVersionError
    from pypi_simple.util import check_repo_version

    if not isinstance(declared, str):
        raise UpstreamError("upstream page has no meta.api-version")
    try:
        check_repo_version(declared)
    except UnsupportedRepoVersionError as exc:
        raise UpstreamError(f"upstream page has an unsupported api-version: {exc}") from exc
    except ValueError as exc:
        raise UpstreamError(f"upstream page has an invalid api-version: {declared!r}") from exc


def _read_json(source: IO[bytes], base_url: str, hint: str, sink: FileSink) -> PageHead:
    import ijson

    # Two passes over the spooled body, both in ijson's C code: the files one object at a
    # time, then the few top-level keys (which may come before or after the files).
    versions: list[str] = []
    for entry in ijson.items(source, "files.item", use_float=True):
        simple = _json_file(entry, base_url)
        if simple is not None:
            version = listed_version(simple.filename)
            sink(simple, version)
            if version != "0":
                versions.append(version)
    source.seek(0)
    top: dict[str, Any] = {}
    events = ijson.parse(source, use_float=True)
    first = next(events, None)
    if first is None or first[1] != "start_map":
        raise UpstreamError("upstream page is not a JSON object")
    for prefix, event, value in events:
        if prefix in ("meta", "name", "versions", "project-status"):
            top[prefix] = _take(events, event, value)
        elif prefix == "files" and event not in ("start_array", "end_array"):
            raise UpstreamError("upstream page has a `files` value that is not a list")
    meta = top.get("meta")
    _check_api_version(meta.get("api-version") if isinstance(meta, dict) else None)
    listed = top.get("versions")
    if isinstance(listed, list):
        versions.extend(v for v in listed if isinstance(v, str))
    status = reason = None
    page_status = top.get("project-status")
    if isinstance(page_status, dict):
        status = known_status(page_status.get("status"))
        found_reason = page_status.get("reason")
        reason = found_reason if isinstance(found_reason, str) else None
    name = top.get("name")
    return PageHead(
        name=canonicalize_name(name if isinstance(name, str) and name else hint),
        versions=sort_versions(versions),
        status=status,
        status_reason=clean_text(reason) if status is not None else None,
    )


# -- PEP 503 HTML ------------------------------------------------------------------------------


class _HeadMetas(HTMLParser):
    """The `pypi:*` metas of an HTML page's head (the links come from pypi-simple's parser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.metas: dict[str, str] = {}
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("body", "a"):
            self.done = True
        elif tag == "meta":
            found = dict(attrs)
            name, content = found.get("name"), found.get("content")
            if name and name.startswith("pypi:") and content is not None:
                self.metas.setdefault(name, content)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.done = True


def _read_html(
    source: IO[bytes], content_type: str, base_url: str, hint: str, sink: FileSink
) -> PageHead:
    from pypi_simple import DistributionPackage, parse_links_stream

    metas = _HeadMetas()
    charset = charset_of(content_type)

    def chunks() -> Iterator[bytes]:
        while chunk := source.read(256 * 1024):
            if not metas.done:
                metas.feed(chunk.decode(charset or "utf-8", errors="replace"))
            yield chunk

    versions: list[str] = []
    for link in parse_links_stream(chunks(), base_url=base_url, http_charset=charset):
        package = DistributionPackage.from_link(link, hint or None)
        core_sha256 = sha256_from(package.metadata_digests)
        has_core = bool(package.has_metadata)
        legacy = link.get_str_attrib("data-dist-info-metadata")
        if package.has_metadata is None and legacy is not None:
            # Pages that only carry PEP 658's original attribute name (PEP 714 renamed it).
            algorithm, _, value = legacy.strip().partition("=")
            if algorithm.lower() == "sha256":
                core_sha256 = sha256_from({"sha256": value})
            has_core = bool(value) or legacy.strip().lower() == "true"
        simple = sanitized_file(
            declared_filename=package.filename,
            url=package.url,
            sha256=sha256_from(package.digests),
            core_sha256=core_sha256,
            has_core=has_core,
            yanked_reason=package.yanked_reason,
            is_yanked=package.is_yanked,
            requires_python=package.requires_python,
            size=None,
            upload_time=None,
        )
        if simple is not None:
            version = listed_version(simple.filename)
            sink(simple, version)
            if version != "0":
                versions.append(version)
    status = known_status(metas.metas.get("pypi:project-status"))
    reason = metas.metas.get("pypi:project-status-reason")
    return PageHead(
        name=canonicalize_name(hint),
        versions=sort_versions(versions),
        status=status,
        status_reason=clean_text(reason) if status is not None else None,
    )


# -- entry points ------------------------------------------------------------------------------


def read_upstream_page(
    source: IO[bytes],
    content_type: str,
    base_url: str,
    sink: FileSink,
    *,
    project: str | None = None,
) -> PageHead:
    """Parse an upstream project page (PEP 691 JSON or PEP 503 HTML) read from `source`,
    handing each sanitized file to `sink` as it is read; returns the page's head.

    `base_url` is the final URL the page was fetched from (after redirects): relative links
    resolve against it (and against a `<base href>`). `project` names the project when the
    page itself does not (HTML); by default it is the last path segment of `base_url`.

    Promises:
    - the name is normalized; `versions` are the upstream's plus every kept file's version;
    - only http(s) links whose filename is a plausible `.whl`, `.tar.gz` or `.zip`
      distribution name are kept; percent-encoded names are decoded (`%2B` -> `+`);
    - each file's `url` and `upstream_url` are the absolute upstream URL without fragment;
    - only sha256 digests are kept; requires-python is kept when it is a valid specifier;
      yanked and its reason, core-metadata (sha256, or the bare `true` marker), size and
      upload-time (UTC) are carried through;
    - the caller drops the files of a page whose status is `quarantined` (the status of a
      JSON page may come after its files).

    Raises `UpstreamError` for an unsupported content type, malformed JSON, a malformed file
    entry or an unsupported repository major version; `sink` may have been called before.
    """
    import ijson
    from pypi_simple import UnsupportedRepoVersionError

    media = media_type_of(content_type)
    hint = project or project_from_url(base_url)
    try:
        # pypi-simple warns about a newer minor api-version; not actionable for one page, and
        # an error under a `-W error` test run. (catch_warnings swaps process-wide state; at
        # worst a warning from another thread is also muted while a page is parsed.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if media == JSON_V1:
                return _read_json(source, base_url, hint, sink)
            if media in (HTML_V1, TEXT_HTML):
                return _read_html(source, content_type, base_url, hint, sink)
    except UnsupportedRepoVersionError as exc:
        raise UpstreamError(f"upstream page has an unsupported api-version: {exc}") from exc
    except UpstreamError:
        raise
    except (ijson.JSONError, ValueError, TypeError, AssertionError, StopIteration) as exc:
        # ijson's errors are ValueErrors (IncompleteJSONError); pypi-simple asserts on
        # attribute types that odd markup can violate.
        raise UpstreamError(f"upstream page could not be parsed: {exc}") from exc
    raise UpstreamError(f"upstream sent an unsupported Content-Type: {content_type!r}")


def parse_upstream_page(
    body: bytes, content_type: str, base_url: str, *, project: str | None = None
) -> ProjectPage:
    """`read_upstream_page` of a page held in memory, as a `ProjectPage` (a quarantined page
    has no files). For tests and small pages; the proxy streams."""
    files: list[SimpleFile] = []
    head = read_upstream_page(
        io.BytesIO(body), content_type, base_url, lambda f, _v: files.append(f), project=project
    )
    return ProjectPage(
        name=head.name,
        files=[] if head.status == "quarantined" else files,
        versions=head.versions,
        status=head.status,
        status_reason=head.status_reason,
    )
