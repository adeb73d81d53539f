"""PEP 503 HTML pages (api-version 1.4): project pages and the root list, as UTF-8 bytes.

Rendering is on the hot path of every `pip install`, so a page is built with one `"".join` and
per-file anchors (already escaped) are memoized in a bounded LRU; `bench/render_bench.py`
measures it.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape

from wheelyard.shared.memo import bytes_memo
from wheelyard.shared.packaging.simple.model import (
    API_VERSION,
    ProjectList,
    ProjectPage,
    SimpleFile,
    join_batched,
)


def _esc(value: str) -> str:
    # quote=True also escapes `"` and `'`, so a value can never close its attribute
    # (docs/standards.md §3).
    return escape(value, quote=True)


_HTML_PROLOGUE = (
    "<!DOCTYPE html>\n<html>\n<head>\n"
    f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
)
_HTML_EPILOGUE = "</body>\n</html>\n"


def _render_html_anchor(f: SimpleFile) -> str:
    # html.escape with quote=True on every value: nothing from a caller or an upstream can close
    # the attribute it sits in (docs/standards.md §3). Calls are merged where possible: this
    # runs once per file per render.
    sha256 = f.sha256
    # Always sha256: uv fails the whole page on an algorithm it does not know
    # (docs/standards.md §3).
    href = escape(f"{f.url}#sha256={sha256}" if sha256 else f.url, True)
    attrs = ""
    if f.requires_python:
        # `>=3.8,<4` must appear as `&gt;=3.8,&lt;4` (PEP 503).
        attrs = f' data-requires-python="{escape(f.requires_python, True)}"'
    if f.core_metadata_sha256:
        # PEP 714 name plus the PEP 658 name with the identical value, as PyPI does
        # (docs/standards.md §3).
        value = escape(f.core_metadata_sha256, True)
        attrs += f' data-core-metadata="sha256={value}" data-dist-info-metadata="sha256={value}"'
    elif f.has_core_metadata:
        attrs += ' data-core-metadata="true" data-dist-info-metadata="true"'
    yanked = f.yanked
    if yanked is True or yanked == "":
        # Never a bare `data-yanked`: pip reads it as not yanked, uv as yanked
        # (docs/standards.md §3).
        attrs += ' data-yanked=""'
    elif yanked:
        attrs += f' data-yanked="{escape(yanked, True)}"'
    return f'<a href="{href}"{attrs}>{escape(f.filename, True)}</a><br/>\n'


def _fragment_size(_args: tuple[SimpleFile], fragment: str) -> int:
    # The key holds every field the fragment shows (unescaped): about as big again.
    return 2 * len(fragment) + 250


# Per-file fragments are memoized: a page is re-rendered when one file changes (an upload, a
# yank) and every other file's fragment is then a cache hit; `SimpleFile` is frozen, so equal
# files render equally. The budget is in bytes (key and fragment), since an upstream decides how
# long a file's fields are: 8 MiB holds about four 2,000-file pages.
FRAGMENT_CACHE_BYTES = 8 * 1024 * 1024
_html_anchor = bytes_memo(FRAGMENT_CACHE_BYTES, size=_fragment_size)(_render_html_anchor)


def render_project_html(page: ProjectPage, *, memo: bool = True) -> bytes:
    """Render a PEP 503 project page (api-version 1.4) as UTF-8 bytes.

    One anchor per file whose text is the filename; every attribute value is HTML-escaped; the
    project-status metas appear only for a status other than `active` (PEP 792).
    `memo=False` skips the fragment memo (a page far bigger than it would only churn it).
    """
    anchor = _html_anchor if memo else _render_html_anchor
    name = _esc(page.name)

    def parts() -> Iterator[str]:
        yield _HTML_PROLOGUE
        if page.status is not None and page.status != "active":
            yield f'<meta name="pypi:project-status" content="{_esc(page.status)}">\n'
            if page.status_reason:
                reason = _esc(page.status_reason)
                yield f'<meta name="pypi:project-status-reason" content="{reason}">\n'
        yield f"<title>Links for {name}</title>\n</head>\n<body>\n<h1>Links for {name}</h1>\n"
        yield from map(anchor, page.listed_files)
        yield _HTML_EPILOGUE

    return join_batched(parts())


def render_index_html(project_list: ProjectList) -> bytes:
    """Render the root page: one `<a href="normalized/">Display</a>` per project (PEP 503).

    The relative href keeps working behind any path prefix.
    """
    parts = [_HTML_PROLOGUE, "<title>Simple index</title>\n</head>\n<body>\n"]
    parts.extend(
        f'<a href="{_esc(normalized)}/">{_esc(display)}</a><br/>\n'
        for display, normalized in project_list.projects
    )
    parts.append(_HTML_EPILOGUE)
    return "".join(parts).encode("utf-8")
