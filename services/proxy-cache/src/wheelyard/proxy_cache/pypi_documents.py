"""PyPI JSON API documents before rendering (`Document`), read from an upstream's own JSON API
answer or built from a stored simple page. Only what we understand of an upstream's document is
kept, checked (filenames, digests, sizes, times, requires-python) and re-encoded by us; every
file URL is made by the caller's `url_for`, so it points through Wheelyard."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from wheelyard.shared.domain.policy import Chain, decide
from wheelyard.shared.domain.proxied import PageContent
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.packaging import pypi_json
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.sanitize import plausible_filename, requires_python_from

UrlFor = Callable[[str, str], str]  # (version, filename) -> download URL
_HEX = re.compile(r"[0-9a-f]+")
#: Metadata keys kept from an upstream's `info` (pypi_json.ReleaseInfo's names).
_INFO_TEXT = (
    "summary",
    "description",
    "description_content_type",
    "keywords",
    "license",
    "license_expression",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "requires_python",
    "home_page",
    "download_url",
)
_INFO_LISTS = ("license_files", "classifiers", "requires_dist", "provides_extra", "dynamic")


@dataclass
class Document:
    """What a JSON API answer holds, before rendering."""

    name: str
    releases: list[pypi_json.ReleaseInfo]
    last_serial: int = 0
    latest: str | None = None  # the release `info` describes, when the source chose one
    seen: set[str] = field(default_factory=set)

    def merge(self, releases: Iterable[pypi_json.ReleaseInfo]) -> None:
        """Add `releases`' files that are not listed yet (by filename), release by release."""
        index = {_canonical(r.version): i for i, r in enumerate(self.releases)}
        for release in releases:
            files = [f for f in release.files if f.filename not in self.seen]
            self.seen.update(f.filename for f in files)
            at = index.get(_canonical(release.version))
            if at is None:
                if files:
                    index[_canonical(release.version)] = len(self.releases)
                    self.releases.append(_with_files(release, files))
                continue
            current = self.releases[at]
            self.releases[at] = _with_files(current, [*current.files, *files])

    def screen(
        self,
        chain: Chain,
        name: str,
        now: datetime,
        times: Mapping[str, datetime | None] | None = None,
    ) -> None:
        """Keep only the files the supply-chain rules `chain` serve, and the releases that
        still have one (a withheld release is not offered here at all). `times`: the time each
        file's age counts from, by filename (else the document's upload time)."""
        if not chain:
            return
        times = times or {}
        kept = []
        for release in self.releases:
            files = [
                f
                for f in release.files
                if decide(
                    chain, name, release.version, times.get(f.filename, f.upload_time), now
                ).served
            ]
            if files:
                kept.append(_with_files(release, files))
        self.releases = kept
        if self.latest and not any(r.version == self.latest for r in kept):
            self.latest = None

    def render(self, version: str | None, project_url: str) -> bytes:
        if version is None:
            latest = next(
                (r for r in self.releases if self.latest and r.version == self.latest), None
            )
            return pypi_json.render_pypi_project_json(
                name=self.name,
                releases=self.releases,
                last_serial=self.last_serial,
                project_url=project_url,
                latest=latest,
            )
        wanted = _canonical(version)
        for release in self.releases:
            if _canonical(release.version) == wanted:
                return pypi_json.render_pypi_release_json(
                    name=self.name,
                    release=release,
                    last_serial=self.last_serial,
                    project_url=project_url,
                )
        raise NotFound(f"Version '{version}' of '{self.name}' does not exist.")


def _with_files(
    release: pypi_json.ReleaseInfo, files: list[pypi_json.FileInfo]
) -> pypi_json.ReleaseInfo:
    return pypi_json.ReleaseInfo(
        version=release.version,
        metadata=release.metadata,
        yanked=release.yanked,
        yanked_reason=release.yanked_reason,
        files=files,
    )


def _canonical(version: str) -> str:
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version


# -- reading an upstream's document -----------------------------------------------------------


def _hex(value: Any, length: int) -> str | None:
    if isinstance(value, str) and len(value) == length and _HEX.fullmatch(value.lower()):
        return value.lower()
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _text(value: Any, limit: int = 64) -> str | None:
    return value if isinstance(value, str) and len(value) <= limit else None


def _upstream_file(entry: Any, url_for: UrlFor) -> pypi_json.FileInfo | None:
    """One file of an upstream document, checked; None when it is not one we would list."""
    if not isinstance(entry, dict):
        return None
    filename = entry.get("filename")
    if not isinstance(filename, str) or not plausible_filename(filename):
        return None
    found = entry.get("digests")
    digests: dict[str, Any] = found if isinstance(found, dict) else {}
    size = entry.get("size")
    core = entry.get("core-metadata", entry.get("data-dist-info-metadata"))
    yanked = entry.get("yanked") is True
    reason = entry.get("yanked_reason")
    return pypi_json.FileInfo(
        filename=filename,
        packagetype=_text(entry.get("packagetype")) or _packagetype(filename),
        python_version=_text(entry.get("python_version")) or _python_version(filename),
        url=url_for(listed_version(filename), filename),
        size=size if type(size) is int and size >= 0 else None,
        sha256=_hex(digests.get("sha256"), 64),
        upload_time=_time(entry.get("upload_time_iso_8601") or entry.get("upload_time")),
        blake2_256=_hex(digests.get("blake2b_256"), 64),
        md5=_hex(digests.get("md5"), 32),
        requires_python=requires_python_from(_text(entry.get("requires_python"), 512)),
        yanked=yanked,
        yanked_reason=_text(reason, 4096) if yanked else None,
        core_metadata_sha256=_hex(core.get("sha256"), 64) if isinstance(core, dict) else None,
    )


def _metadata(info: Any) -> dict[str, Any]:
    if not isinstance(info, dict):
        return {}
    kept: dict[str, Any] = {k: info[k] for k in _INFO_TEXT if isinstance(info.get(k), str)}
    for key in _INFO_LISTS:
        value = info.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            kept[key] = value
    if isinstance(info.get("platform"), str):
        kept["platforms"] = info["platform"]
    urls = info.get("project_urls")
    if isinstance(urls, dict) and all(isinstance(v, str) for v in urls.values()):
        kept["project_urls"] = {str(k): v for k, v in urls.items()}
    return kept


def read_upstream_document(body: IO[bytes], url_for: UrlFor, fallback_name: str) -> Document:
    """An upstream's JSON API answer (project or release), read in passes of ijson's C parser
    (`info`, `last_serial`, then each release's files, or the `urls` of a release document)."""
    import ijson

    try:
        info = next(ijson.items(body, "info", use_float=True), None)
        body.seek(0)
        serial = next(ijson.items(body, "last_serial", use_float=True), None)
        body.seek(0)
        version = info.get("version") if isinstance(info, dict) else None
        metadata = _metadata(info)
        releases: list[pypi_json.ReleaseInfo] = []
        by_version = ijson.kvitems(body, "releases", use_float=True)
        for raw_version, entries in by_version:
            files = [f for f in map(lambda e: _upstream_file(e, url_for), entries or ()) if f]
            if files:
                releases.append(
                    pypi_json.ReleaseInfo(
                        version=raw_version,
                        metadata=metadata if raw_version == version else {},
                        yanked=all(f.yanked for f in files),
                        yanked_reason=next((f.yanked_reason for f in files), None),
                        files=files,
                    )
                )
        if not releases and isinstance(version, str):
            body.seek(0)  # a release document: its files are `urls`
            entries = ijson.items(body, "urls.item", use_float=True)
            files = [f for f in (_upstream_file(e, url_for) for e in entries) if f]
            if files:
                releases.append(
                    pypi_json.ReleaseInfo(
                        version=version,
                        metadata=metadata,
                        yanked=all(f.yanked for f in files),
                        files=files,
                    )
                )
    except (ijson.JSONError, ValueError, TypeError) as exc:
        raise UpstreamError(f"the upstream's JSON API answer could not be parsed: {exc}") from exc
    name = info.get("name") if isinstance(info, dict) else None
    return Document(
        name=name if isinstance(name, str) and len(name) <= 255 else fallback_name,
        releases=releases,
        last_serial=serial if type(serial) is int else 0,
        latest=version if isinstance(version, str) else None,
        seen={f.filename for r in releases for f in r.files},
    )


def _packagetype(filename: str) -> str:
    return "bdist_wheel" if filename.endswith(".whl") else "sdist"


def _python_version(filename: str) -> str:
    return filename[:-4].split("-")[-3] if filename.endswith(".whl") else "source"


def document_from_page(content: PageContent, url_for: UrlFor) -> Document:
    """A document built from a stored simple page (no metadata: the page has none)."""
    by_version: dict[str, list[pypi_json.FileInfo]] = {}
    for f, version in content.files_and_versions():
        yanked = f.yanked is not False
        by_version.setdefault(version, []).append(
            pypi_json.FileInfo(
                filename=f.filename,
                packagetype=_packagetype(f.filename),
                python_version=_python_version(f.filename),
                url=url_for(version, f.filename),
                size=f.size,
                sha256=f.sha256,
                upload_time=f.listed_time,
                requires_python=f.requires_python,
                yanked=yanked,
                yanked_reason=f.yanked if isinstance(f.yanked, str) else None,
                core_metadata_sha256=f.core_metadata_sha256,
            )
        )
    releases = [
        pypi_json.ReleaseInfo(
            version=version,
            yanked=all(f.yanked for f in files),
            yanked_reason=next((f.yanked_reason for f in files if f.yanked_reason), None),
            files=files,
        )
        for version, files in by_version.items()
        if version != "0"
    ]
    serial = content.row.head.get("serial")
    return Document(
        name=content.row.project,
        releases=releases,
        last_serial=serial if isinstance(serial, int) else 0,
        seen={f.filename for r in releases for f in r.files},
    )
