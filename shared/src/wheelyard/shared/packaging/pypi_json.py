"""The PyPI JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`), shaped from
plain inputs.

Pure functions: the caller loads releases and files from the database and passes them in as
`ReleaseInfo`/`FileInfo`; this module only decides which release is "latest" and lays the data
out the way warehouse's `legacy/api/json.py` does (docs/standards.md §10), so that pdm's opt-in
JSON API mode, Renovate and bandersnatch-style mirrors read it like PyPI's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from wheelyard.shared.errors import NotFound
from wheelyard.shared.memo import bytes_memo

__all__ = [
    "FileInfo",
    "ReleaseInfo",
    "latest_version",
    "render_pypi_project_json",
    "render_pypi_release_json",
    "version_order_key",
]


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One stored file of a release, as the JSON API describes it.

    `packagetype` is `bdist_wheel` or `sdist`; `python_version` is the upload's `pyversion`
    (`py3`, `source`...). `url` is absolute or relative, as the caller wants it served.
    `upload_time` is taken as UTC when naive. Digests are lowercase hex; `md5` and
    `blake2_256` may be None when not computed. A proxied file may lack a size, sha256 or upload
    time (an upstream HTML page gives none): they are rendered as null.
    """

    filename: str
    packagetype: str
    python_version: str
    url: str
    size: int | None
    sha256: str | None
    upload_time: datetime | None
    blake2_256: str | None = None
    md5: str | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    core_metadata_sha256: str | None = None
    comment_text: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """One release: its `version`, the core `metadata` stored for it, yank state and files.

    `metadata` uses the database's keys: summary, description, description_content_type,
    keywords (str or list), license, license_expression, license_files, classifiers, author,
    author_email, maintainer, maintainer_email, requires_python, requires_dist,
    provides_extra, platforms (list), home_page, download_url, project_urls (dict), dynamic.
    Missing keys render as null (lists as the empty list or null, as PyPI does).
    """

    version: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    yanked: bool = False
    yanked_reason: str | None = None
    files: Sequence[FileInfo] = ()


#: Parsed versions remembered, at most this many bytes: upstream version strings can be any
#: length, and a parsed Version holds a few hundred bytes besides its string.
PARSED_VERSIONS_BYTES = 4 * 1024 * 1024


@bytes_memo(PARSED_VERSIONS_BYTES, size=lambda args, _result: 2 * len(args[0]) + 600)
def _parsed(version: str) -> Version | None:
    # Parsing dominates ordering a project of thousands of releases (measured: three parses
    # per release per page); a release's version string never changes, so parse it once.
    try:
        return Version(version)
    except InvalidVersion:
        return None


def version_order_key(version: str) -> tuple[int, Any]:
    """Sort key of a version string: PEP 440 order, legacy strings below every PEP 440 one."""
    parsed = _parsed(version)
    return (0, version) if parsed is None else (1, parsed)


def _is_prerelease(version: str) -> bool:
    parsed = _parsed(version)
    return True if parsed is None else parsed.is_prerelease  # unknown shape: never "latest"


def latest_version(releases: Iterable[ReleaseInfo]) -> ReleaseInfo | None:
    """The release the project route describes, or None when there are no releases.

    Warehouse's order (docs/standards.md §10): non-yanked before yanked, then final releases before
    pre-releases (dev releases count as pre-releases), then the highest PEP 440 version.
    """
    best: ReleaseInfo | None = None
    best_key: tuple[Any, ...] | None = None
    for release in releases:
        key = (
            not release.yanked,
            not _is_prerelease(release.version),
            version_order_key(release.version),
        )
        if best_key is None or key > best_key:
            best, best_key = release, key
    return best


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _file_entry(f: FileInfo, release: ReleaseInfo) -> dict[str, Any]:
    uploaded = _utc_naive(f.upload_time) if f.upload_time is not None else None
    # A yanked release yanks all of its files (PyPI yanks whole releases:
    # docs/standards.md §6); a file may also be yanked on its own.
    yanked = f.yanked or release.yanked
    reason = (f.yanked_reason or release.yanked_reason or None) if yanked else None
    return {
        "filename": f.filename,
        "packagetype": f.packagetype,
        "python_version": f.python_version,
        # Signatures are no longer served (docs/standards.md §3), so never advertise one.
        "has_sig": False,
        "comment_text": f.comment_text,
        "md5_digest": f.md5,
        "digests": {"md5": f.md5, "sha256": f.sha256, "blake2b_256": f.blake2_256},
        "size": f.size,
        "downloads": -1,
        "upload_time": uploaded.strftime("%Y-%m-%dT%H:%M:%S") if uploaded else None,
        "upload_time_iso_8601": (
            uploaded.isoformat(timespec="microseconds") + "Z" if uploaded else None
        ),
        "url": f.url,
        "requires_python": f.requires_python or None,
        "yanked": yanked,
        "yanked_reason": reason,
        # The simple API's key and value shape; never `dist-info-metadata` (PEP 714).
        "core-metadata": ({"sha256": f.core_metadata_sha256} if f.core_metadata_sha256 else False),
    }


def _file_entries(release: ReleaseInfo) -> list[dict[str, Any]]:
    return [_file_entry(f, release) for f in sorted(release.files, key=lambda f: f.filename)]


def _list_or_none(value: Any) -> list[Any] | None:
    if not value:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def _joined(value: Any, separator: str) -> str | None:
    # Warehouse stores keywords and platform as one string; core metadata may give a list.
    if value is None:
        return None
    if isinstance(value, str):
        return value
    items = [str(item) for item in value]
    return separator.join(items) if items else None


def _info(name: str, release: ReleaseInfo, project_url: str | None) -> dict[str, Any]:
    meta = release.metadata
    release_url = f"{project_url.rstrip('/')}/{release.version}/" if project_url else None
    project_urls = meta.get("project_urls")
    return {
        "name": name,
        "version": release.version,
        "summary": meta.get("summary"),
        "description_content_type": meta.get("description_content_type"),
        "description": meta.get("description"),
        "keywords": _joined(meta.get("keywords"), ","),
        "license": meta.get("license"),
        "license_expression": meta.get("license_expression"),
        "license_files": _list_or_none(meta.get("license_files")),
        "classifiers": list(meta.get("classifiers") or ()),
        "author": meta.get("author"),
        "author_email": meta.get("author_email"),
        "maintainer": meta.get("maintainer"),
        "maintainer_email": meta.get("maintainer_email"),
        "requires_python": meta.get("requires_python"),
        "platform": _joined(meta.get("platforms"), ", "),
        "downloads": {"last_day": -1, "last_week": -1, "last_month": -1},
        "package_url": project_url,
        "project_url": project_url,
        "project_urls": dict(project_urls) if project_urls else None,
        "release_url": release_url,
        "requires_dist": _list_or_none(meta.get("requires_dist")),
        "provides_extra": _list_or_none(meta.get("provides_extra")),
        "docs_url": None,
        "bugtrack_url": None,
        "home_page": meta.get("home_page"),
        "download_url": meta.get("download_url"),
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason or None,
        "dynamic": _list_or_none(meta.get("dynamic")),
    }


def _document(
    *,
    name: str,
    release: ReleaseInfo,
    last_serial: int,
    project_url: str | None,
    releases: Sequence[ReleaseInfo] | None,
) -> bytes:
    data: dict[str, Any] = {
        "info": _info(name, release, project_url),
        "last_serial": last_serial,
        "urls": _file_entries(release),
        # We hold no vulnerability data; an empty list is what PyPI sends when it knows none.
        "vulnerabilities": [],
        "ownership": {"roles": [], "organization": None},
    }
    if releases is not None:
        # Only the project route lists every release (pypi/warehouse#11775).
        data["releases"] = {
            r.version: _file_entries(r)
            for r in sorted(releases, key=lambda r: version_order_key(r.version))
        }
    return json.dumps(data, separators=(",", ":")).encode("ascii")


def render_pypi_project_json(
    *,
    name: str,
    releases: Sequence[ReleaseInfo],
    last_serial: int,
    project_url: str | None = None,
    latest: ReleaseInfo | None = None,
) -> bytes:
    """Render `/pypi/<project>/json`: `info` of the latest release, its files as `urls`, every
    release's files under `releases` (in PEP 440 order), `vulnerabilities: []`, `last_serial`.

    `name` is the display name. `project_url` (e.g. a web page for the project) fills
    `package_url`/`project_url` and derives `release_url`; None leaves them null.
    `latest` overrides which release `info` describes (an upstream's own choice).
    Raises `NotFound` when there is no release at all (the route then answers 404).
    """
    latest = latest or latest_version(releases)
    if latest is None:
        raise NotFound(f"project {name!r} has no releases")
    return _document(
        name=name,
        release=latest,
        last_serial=last_serial,
        project_url=project_url,
        releases=releases,
    )


def render_pypi_release_json(
    *,
    name: str,
    release: ReleaseInfo,
    last_serial: int,
    project_url: str | None = None,
) -> bytes:
    """Render `/pypi/<project>/<version>/json`: like the project route for `release`, but
    without the `releases` key (warehouse removed it there, pypi/warehouse#11775)."""
    return _document(
        name=name,
        release=release,
        last_serial=last_serial,
        project_url=project_url,
        releases=None,
    )
