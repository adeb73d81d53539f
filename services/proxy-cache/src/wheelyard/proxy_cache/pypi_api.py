"""The PyPI JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`) of proxy and
group repositories, answered the way their simple pages are:

- a proxy repository asks its upstream's own JSON API, derived from the upstream's simple URL
  (`https://pypi.org/simple/` -> `https://pypi.org/pypi/<project>/json`); when the upstream has
  none (its URL does not end in `/simple/`, it answers 404 or fails) the document is built from
  the stored simple page. The project must be on the simple page first, so a document never
  lists a file that cannot be downloaded through us;
- a group answers like its simple page (`groups.resolve`): a name held by a hosted member
  comes from the database (every hosted member with it, in member order), the upstream only when
  the group allows it; any other name from the first proxy member that knows it;
- every file URL points through the repository asked (never at the upstream), and only what we
  understand of the upstream's document is re-emitted (sanitised, re-encoded by us).

Documents that come from an upstream are cached (the repository's page TTL); those with hosted
files are rendered from the database on each request, like the index service does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

from anyio import to_thread
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from wheelyard.proxy_cache import groups
from wheelyard.proxy_cache.pages import ProxyPages
from wheelyard.proxy_cache.store import PageContent
from wheelyard.proxy_cache.upstream import UpstreamClient
from wheelyard.shared.domain.hosted import find_project, release_infos
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import NotFound, UpstreamError
from wheelyard.shared.packaging import pypi_json
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.sanitize import plausible_filename, requires_python_from
from wheelyard.shared.routes import file_path, repository_path
from wheelyard.shared.web.context import RequestContext

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


def upstream_json_url(simple_url: str, name: str, version: str | None) -> str | None:
    """The upstream's JSON API URL for `name` (and `version`), or None when its simple URL does
    not end in `/simple/` (then it has no JSON API we can find)."""
    parts = urlsplit(simple_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/simple") and path != "simple":
        return None
    root = path[: -len("simple")] or "/"
    tail = f"pypi/{quote(name)}/" + (f"{quote(version, safe='')}/" if version else "") + "json"
    return urlunsplit((parts.scheme, parts.netloc, root + tail, "", ""))


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
                upload_time=f.upload_time,
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


# -- answering ----------------------------------------------------------------------------------


class PypiApi:
    """JSON API documents of proxy and group repositories (see the module docstring)."""

    def __init__(self, pages: ProxyPages, client: UpstreamClient) -> None:
        self.pages = pages
        self.client = client

    async def document(
        self, ctx: RequestContext, view: RepositoryView, name: str, version: str | None
    ) -> bytes:
        """The rendered document of `name` (normalized), or of its `version`, in `view`."""
        base = ctx.base_url
        project_url = f"{base}{repository_path(view.storage, view.name)}/pypi/{name}/"

        def url_for(file_version: str, filename: str) -> str:
            return base + file_path(view.storage, view.name, name, file_version, filename)

        if view.type == "proxy":
            return await self._cached(
                ctx, view, name, version, base, lambda: self._proxied(view, name, version, url_for)
            )
        found = await groups.resolve(ctx, self.pages, view, name)
        if not found.hosted:
            assert found.proxy is not None
            member = found.proxy[0]
            return await self._cached(
                ctx,
                view,
                name,
                version,
                base,
                lambda: self._proxied(member, name, version, url_for),
            )
        document: Document | None = None
        for member, serial in found.hosted:
            ref = await find_project(ctx.session, member.id, name)
            if ref is None:
                continue
            releases = await release_infos(ctx.session, ref, url_for)
            if document is None:
                document = Document(name=ref.display_name, releases=[])
            document.merge(releases)
            document.last_serial = max(document.last_serial, serial)
        if document is None:
            raise NotFound(f"Project '{name}' does not exist in '{view.path}'.")
        if found.proxy is not None:
            upstream = await self._proxied(found.proxy[0], name, version, url_for)
            document.merge(upstream.releases)
            document.last_serial = max(document.last_serial, upstream.last_serial)
        return document.render(version, project_url)

    async def _cached(
        self,
        ctx: RequestContext,
        view: RepositoryView,
        name: str,
        version: str | None,
        base: str,
        build: Callable[[], Any],
    ) -> bytes:
        ttl = self.pages.ttl(view)
        variant = hashlib.blake2s(f"{base}|{version or ''}".encode(), digest_size=8).hexdigest()
        key = f"pypi-json:{view.id}:{name}:{variant}"
        cache = ctx.backends.cache
        hit = await cache.get(key) if ttl > 0 else None
        if hit is not None:
            return hit
        document: Document = await build()
        project_url = f"{base}{repository_path(view.storage, view.name)}/pypi/{name}/"
        body = document.render(version, project_url)
        if ttl > 0:
            await cache.set(key, body, ttl=ttl)
        return body

    async def _proxied(
        self, proxy: RepositoryView, name: str, version: str | None, url_for: UrlFor
    ) -> Document:
        """The document of `name` from proxy repository `proxy`'s upstream, or built from its
        stored simple page. NotFound when the simple page does not know the project."""
        await self.pages.current(proxy, name, fresh=False)
        content = await self.pages.content(proxy, name)
        upstream = proxy.upstreams[content.row.source] if proxy.upstreams else None
        url = upstream_json_url(upstream.url, name, version) if upstream else None
        if upstream is not None and url is not None:
            try:
                result = await self.client.fetch_document(
                    upstream, url, {"Accept": "application/json"}
                )
            except UpstreamError:
                result = None  # fall back on the stored simple page
            if result is not None:
                try:
                    if result.status == 200:
                        document: Document = await to_thread.run_sync(
                            read_upstream_document, result.body, url_for, name
                        )
                        if document.releases:
                            return document
                finally:
                    result.close()
        return await to_thread.run_sync(document_from_page, content, url_for)
