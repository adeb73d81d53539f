"""Proxied pages as we serve them: every file URL rewritten to point through this registry
(`/repositories/<storage>/<repo>/<project>/<version>/<filename>`), never at the upstream."""

from __future__ import annotations

from wheelyard.proxy_cache.pages import DecodedPage
from wheelyard.shared.domain.proxied import version_of
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile
from wheelyard.shared.routes import file_path


def linked_page(decoded: DecodedPage, *, base: str, storage: str, repo: str) -> ProjectPage:
    """The page with every file URL pointing through `storage/repo` on this server."""
    name = decoded.page.name
    files = [
        SimpleFile(
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
        for f in decoded.page.files
    ]
    return ProjectPage(
        name=name,
        files=files,
        versions=decoded.page.versions,
        status=decoded.page.status,
        status_reason=decoded.page.status_reason,
    )
