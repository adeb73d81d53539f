"""The simple API's data: media types, the api-version we claim, and the page models
(`SimpleFile`, `ProjectPage`, `ProjectList`) with PEP 440 version ordering.

Pure values shared by the renderers (`render_html`, `render_json`), the upstream parser and
every service that builds a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from wheelyard.shared.memo import bytes_memo

#: The api-version we claim. 1.4 = versions/size/upload-time (1.1) + project-status (1.4);
#: HTML is frozen at 1.4 (PEP 833), and we never claim PEP 708 (docs/standards.md §3, §4).
API_VERSION = "1.4"

#: PEP 691 media types ("Content-Types": text/html is an alias of v1+html).
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

#: PEP 792 project status markers.
PROJECT_STATUSES = frozenset({"active", "archived", "quarantined", "deprecated"})


@dataclass(frozen=True, slots=True)
class SimpleFile:
    """One distribution file as listed on a project page.

    - `url` is emitted verbatim (relative or absolute); keep it query-free
      (docs/standards.md §8) and without a fragment: the `#sha256=` fragment is added by the
      HTML renderer.
    - `sha256` is lowercase hex, or None when an upstream gave no sha256 (then HTML has no
      fragment and JSON has `"hashes": {}`).
    - `size` is the byte count, or None when unknown (upstream HTML pages do not carry it).
    - `upload_time` is converted to UTC; a naive datetime is taken to be UTC already.
    - `yanked` is False, True (yanked without a reason) or the reason string (PEP 592, PEP 691).
    - `core_metadata_sha256` is the sha256 of the PEP 658 `.metadata` bytes; when the metadata
      exists but its sha256 is unknown (upstream said `true` or gave another algorithm), set
      `has_core_metadata=True` and leave the hash None. A hash implies `has_core_metadata`.
    - `upstream_url` is the absolute URL the proxy fetches the file from (None for hosted files).
    - `first_seen` is when a proxy repository first listed the file (None elsewhere): kept
      apart from `upload_time`, which is the upstream's; pages show it where there is none.
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
    first_seen: datetime | None = None

    @property
    def listed_time(self) -> datetime | None:
        """The time pages show and the age rule counts from: the upstream's upload time,
        else the time this repository first listed the file."""
        return self.upload_time or self.first_seen


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project detail page: normalized `name`, its files and its versions.

    `files` may be a one-shot iterator (a proxied page streamed from storage): renderers
    iterate it once. `versions` may be unsorted or contain duplicates; the renderers emit them
    deduplicated in PEP 440 order. Callers must make sure every file's version is listed
    (PEP 700).
    `status` is one of `PROJECT_STATUSES` or None (no marker); a `quarantined` page is rendered
    with no files whatever `files` holds (PEP 792).
    """

    name: str
    files: Iterable[SimpleFile]
    versions: Sequence[str]
    status: str | None = None
    status_reason: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in PROJECT_STATUSES:
            raise ValueError(f"unknown project status {self.status!r}")

    @property
    def listed_files(self) -> Iterable[SimpleFile]:
        """The files a page shows: none for a quarantined project (PEP 792)."""
        return () if self.status == "quarantined" else self.files


@dataclass(frozen=True, slots=True)
class ProjectList:
    """The root page: `(display_name, normalized_name)` pairs, rendered in the given order."""

    projects: Sequence[tuple[str, str]] = field(default_factory=tuple)


# A parsed Version holds a few hundred bytes besides the string it came from.
@bytes_memo(4 * 1024 * 1024, size=lambda args, _result: 2 * len(args[0]) + 600)
def _version_key(raw: str) -> tuple[str, tuple[int, Any]]:
    """(normalized string, sort key) for one version string; memoized (in at most 4 MiB)
    because the same versions are sorted on every render of a page."""
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
    # Deduplicated first (a page of 100,000 files names a few thousand versions), keeping
    # the first spelling of each string.
    return list(_sorted_versions(tuple(dict.fromkeys(versions))))


def join_batched(parts: Iterable[str], *, batch: int = 1024) -> bytes:
    """`"".join(parts).encode()` without holding every part at once: parts are joined and
    encoded `batch` at a time, so a page of 100,000 files never has 100,000 small strings
    alive together (they would fragment the heap and keep the process large)."""
    out: list[bytes] = []
    pending: list[str] = []
    for part in parts:
        pending.append(part)
        if len(pending) >= batch:
            out.append("".join(pending).encode("utf-8"))
            pending.clear()
    out.append("".join(pending).encode("utf-8"))
    return b"".join(out)


@bytes_memo(8 * 1024 * 1024)
def _sorted_versions(versions: tuple[str, ...]) -> tuple[str, ...]:
    # Memoized per page's version list (in at most 8 MiB: upstream pages can list thousands
    # of versions of any length): Version comparisons run in Python and dominate a warm JSON
    # render otherwise; the tuple's strings are shared with the caller's.
    keyed: dict[str, tuple[int, Any]] = {}
    for raw in versions:
        normalized, key = _version_key(raw)
        keyed[normalized] = key
    return tuple(sorted(keyed, key=keyed.__getitem__))
