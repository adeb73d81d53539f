"""Proxied pages as we serve them: every file URL rewritten to point through this registry
(`/repositories/<storage>/<repo>/<project>/<version>/<filename>`), never at the upstream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import quote

from wheelyard.shared.domain.proxied import PageContent
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile
from wheelyard.shared.routes import project_files_path


def linked_files(
    files: Iterable[tuple[SimpleFile, str]], *, name: str, base: str, storage: str, repo: str
) -> Iterator[SimpleFile]:
    """`files` (with their URL version segments) with every URL pointing through
    `storage/repo` on this server (lazily)."""
    # `file_path` of every file, with the part they share built once.
    prefix = base + project_files_path(storage, repo, name)
    for f, version in files:
        yield SimpleFile(
            filename=f.filename,
            url=f"{prefix}{quote(version, safe='')}/{quote(f.filename, safe='')}",
            sha256=f.sha256,
            size=f.size,
            # Every file has a time on our pages (PEP 700): the upstream's, else when this
            # repository first listed it.
            upload_time=f.listed_time,
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
        files=linked_files(
            content.files_and_versions(), name=name, base=base, storage=storage, repo=repo
        ),
        versions=list(head.get("versions") or ()),
        status=status if isinstance(status, str) else None,
        status_reason=head.get("status_reason"),
    )
