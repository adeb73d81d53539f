"""PEP 691 JSON pages (api-version 1.4): project pages and the root list, as ASCII bytes.

Per-file fragments are assembled from the C string encoder's output and memoized in a bounded
LRU: about twice as fast as one dict per file through `json.dumps` (`bench/render_bench.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from wheelyard.shared.memo import bytes_memo
from wheelyard.shared.packaging.simple.model import (
    API_VERSION,
    ProjectList,
    ProjectPage,
    SimpleFile,
    join_batched,
    sort_versions,
)


def _format_upload_time(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (PEP 700)."""
    offset = value.utcoffset()
    if offset:
        value = value.astimezone(UTC)
    # isoformat() is C code and faster than strftime on this per-file hot path; its first 26
    # characters are the date and time with microseconds (years are zero-padded to 4 digits),
    # whatever offset suffix follows. Naive values are taken to be UTC already.
    return value.isoformat(timespec="microseconds")[:26] + "Z"


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
    # The hashes object is required even when empty (PEP 691).
    hashes = f'{{"sha256":{_json_str(sha256)}}}' if sha256 else "{}"
    requires_python = (
        f',"requires-python":{_json_str(f.requires_python)}' if f.requires_python else ""
    )
    # Only `core-metadata`: a `dist-info-metadata` key crashes pip 22.3-23.1 (PEP 714,
    # pypa/pip#12042).
    if f.core_metadata_sha256:
        core_metadata = f'{{"sha256":{_json_str(f.core_metadata_sha256)}}}'
    else:
        core_metadata = "true" if f.has_core_metadata else "false"
    # `yanked` is false, true, or a non-empty reason (PEP 691): "" means "no reason".
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


def _fragment_size(_args: tuple[SimpleFile], fragment: str) -> int:
    # The key holds every field the fragment shows (unescaped): about as big again.
    return 2 * len(fragment) + 250


# Per-file fragments are memoized: a page is re-rendered when one file changes (an upload, a
# yank) and every other file's fragment is then a cache hit; `SimpleFile` is frozen, so equal
# files render equally. The budget is in bytes (key and fragment), since an upstream decides how
# long a file's fields are: 8 MiB holds about four 2,000-file pages.
FRAGMENT_CACHE_BYTES = 8 * 1024 * 1024
_json_file = bytes_memo(FRAGMENT_CACHE_BYTES, size=_fragment_size)(_render_json_file)


def render_project_json(page: ProjectPage, *, memo: bool = True) -> bytes:
    """Render a PEP 691 project page (api-version 1.4) as compact JSON bytes.

    Keys per docs/standards.md §4: `name` (normalized), `versions` (sorted, deduplicated), `files`
    (`hashes`, `requires-python` only when set, `core-metadata`, `yanked`, `size`, `upload-time`
    when known) and `project-status` only when a status is set. The output is ASCII.
    `memo=False` skips the fragment memo (a page far bigger than it would only churn it).
    """
    fragment = _json_file if memo else _render_json_file
    head: dict[str, Any] = {"meta": {"api-version": API_VERSION}, "name": page.name}
    if page.status is not None:
        status: dict[str, str] = {"status": page.status}
        if page.status_reason:
            status["reason"] = page.status_reason
        head["project-status"] = status
    head["versions"] = sort_versions(page.versions)

    def parts() -> Iterator[str]:
        # `head` always ends with the versions list, so its closing brace is where `files` goes.
        yield _dumps(head)[:-1] + ',"files":['
        separator = ""
        for f in page.listed_files:
            yield separator
            yield fragment(f)
            separator = ","
        yield "]}"

    return join_batched(parts())


def render_index_json(project_list: ProjectList) -> bytes:
    """Render the root page as PEP 691 JSON: `{"meta": ..., "projects": [{"name": display}]}`."""
    return _dump_json(
        {
            "meta": {"api-version": API_VERSION},
            "projects": [{"name": display} for display, _ in project_list.projects],
        }
    )
