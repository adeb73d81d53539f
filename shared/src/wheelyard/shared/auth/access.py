"""What a caller may do with a repository.

Until per-repository permissions exist, the rule is: anyone may read a public repository,
only administrators may read a private one or write anywhere. Unauthenticated callers get 401
(so pip and uv retry with credentials), authenticated ones 403, and private repositories a
caller may not read are reported as missing.
"""

from __future__ import annotations

from wheelyard.shared.auth.credentials import Principal
from wheelyard.shared.db.registry import RepositoryView
from wheelyard.shared.errors import Forbidden, NotFound, Unauthenticated


def can_read(principal: Principal, repo: RepositoryView) -> bool:
    """True when `principal` may read `repo`."""
    return repo.visibility == "public" or principal.is_admin


def require_read(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` may read `repo`."""
    if can_read(principal, repo):
        return
    if not principal.authenticated:
        raise Unauthenticated("Authentication required to read this repository.")
    raise NotFound(f"Repository '{repo.path}' does not exist.")


def require_write(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` may upload to, yank in or delete from `repo`."""
    if not principal.authenticated:
        raise Unauthenticated("Authentication required to upload or change packages.")
    if not principal.is_admin:
        raise Forbidden(f"User '{principal.username}' may not write to '{repo.path}'.")
