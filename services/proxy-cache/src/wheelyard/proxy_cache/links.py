"""Proxied pages as we serve them: every file URL rewritten to point through this registry
(`/repositories/<storage>/<repo>/<project>/<version>/<filename>`), never at the upstream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from wheelyard.proxy_cache.store import PageContent
from wheelyard.shared.memo import bytes_memo
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile
from wheelyard.shared.routes import file_path


@bytes_memo(4 * 1024 * 1024)
def version_of(filename: str) -> str:
    """The version segment of a file's URL: the filename's version, or `0` if unparseable."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return "0"


def linked_files(
    files: Iterable[SimpleFile], *, name: str, base: str, storage: str, repo: str
) -> Iterator[SimpleFile]:
    """`files` with every URL pointing through `storage/repo` on this server (lazily)."""
    for f in files:
        yield SimpleFile(
            filename=f.filename,
            url=base + file_path(storage, repo, name, version_of(f.filename), f.filename),
            sha256=f.sha256,
            size=f.size,
            upload_time=f.upload_time,
            requires_python=f.requires_python,
            yanked=f.yanked,
            core_metadata_sha256=f.core_metadata_sha256,
            has_core_metadata=f.has_core_metadata,
        )


def linked_page(content: PageContent, *, base: str, storage: str, repo: str) -> ProjectPage:
    """The stored page with every file URL pointing through `storage/repo` on this server;
    its files are read from storage as the page is rendered (one pass)."""
    name = content.row.project
    head = content.row.head
    status = head.get("status")
    return ProjectPage(
        name=name,
        files=linked_files(content.files(), name=name, base=base, storage=storage, repo=repo),
        versions=list(head.get("versions") or ()),
        status=status if isinstance(status, str) else None,
        status_reason=head.get("status_reason"),
    )
