"""Addresses of the web interface's pages (root-relative), spelled in one place."""

from __future__ import annotations

from urllib.parse import quote

from wheelyard.shared.routes import file_path, repository_path

HOME = "/ui/"


def _q(segment: str) -> str:
    return quote(segment, safe="")


def repository(storage: str, repo: str) -> str:
    """A repository's page."""
    return f"/ui/repositories/{_q(storage)}/{_q(repo)}/"


def project(storage: str, repo: str, name: str) -> str:
    """A project's page (its latest version)."""
    return f"{repository(storage, repo)}projects/{_q(name)}/"


def version(storage: str, repo: str, name: str, release: str) -> str:
    """One version of a project."""
    return f"{project(storage, repo, name)}{_q(release)}/"


def file(storage: str, repo: str, name: str, release: str, filename: str) -> str:
    """One file of a version."""
    return f"{version(storage, repo, name, release)}files/{_q(filename)}"


def settings(storage: str, repo: str) -> str:
    """A repository's settings (its administrators)."""
    return f"{repository(storage, repo)}settings"


def refresh(storage: str, repo: str, name: str) -> str:
    """Where a cached proxy page is expired (POST)."""
    return f"{repository(storage, repo)}cache/{_q(name)}/refresh"


def download(storage: str, repo: str, name: str, release: str, filename: str) -> str:
    """Where the file itself is downloaded (the simple API's link)."""
    return file_path(storage, repo, name, release, filename)


def simple(base: str, storage: str, repo: str) -> str:
    """The absolute simple-index URL of a repository, with its trailing slash."""
    return f"{base}{repository_path(storage, repo)}/simple/"


def upload(base: str, storage: str, repo: str) -> str:
    """The absolute upload URL of a hosted repository (twine, uv publish, poetry, pdm)."""
    return f"{base}{repository_path(storage, repo)}/"


def user(username: str) -> str:
    """A user's administration page."""
    return f"/ui/admin/users/{_q(username)}"
