"""What a caller may do with a repository: read < write < admin.

- The global administrator may do everything (within an API token's limits).
- Anyone may read a public repository; otherwise the user's level on the repository decides.
- An API token opens only the repositories it lists, and at most its scope (read or write).
  Reading a group through a token checks the token against the group itself; the group's
  members are then checked against the user's own permissions (`through_group=True`).
- Unauthenticated callers get 401 (pip and uv then retry with credentials), authenticated ones
  403, and a private repository the caller may not read is reported as missing (404).
"""

from __future__ import annotations

from wheelyard.shared.auth.principal import LEVELS, Principal
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import Forbidden, NotFound, Unauthenticated


def allowed(
    principal: Principal, repo: RepositoryView, level: str, *, through_group: bool = False
) -> bool:
    """True when `principal` may act on `repo` at `level` (read, write or admin)."""
    need = LEVELS[level]
    if principal.token_scope is not None:
        if need > LEVELS[principal.token_scope]:
            return False
        if not through_group and repo.path not in (principal.token_repositories or ()):
            return False
    if principal.is_admin:
        return True
    if need == LEVELS["read"] and repo.visibility == "public":
        return True
    have = principal.permission(repo.path)
    return have is not None and LEVELS[have] >= need


def can_read(principal: Principal, repo: RepositoryView, *, through_group: bool = False) -> bool:
    """True when `principal` may read `repo`."""
    return allowed(principal, repo, "read", through_group=through_group)


def require_read(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` may read `repo`."""
    if can_read(principal, repo):
        return
    if not principal.authenticated:
        raise Unauthenticated("Authentication required to read this repository.")
    if repo.visibility == "private" and not _mentions(principal, repo):
        raise NotFound(f"Repository '{repo.path}' does not exist.")
    raise Forbidden(f"'{principal.username}' may not read '{repo.path}' with these credentials.")


def require_write(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` may upload to, yank in or change `repo`."""
    _require(principal, repo, "write", "upload to or change packages in")


def require_admin(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` administers `repo` (delete files, manage its cache)."""
    _require(principal, repo, "admin", "administer")


def _require(principal: Principal, repo: RepositoryView, level: str, what: str) -> None:
    if allowed(principal, repo, level):
        return
    if not principal.authenticated:
        raise Unauthenticated(f"Authentication required to {what} '{repo.path}'.")
    if (
        repo.visibility == "private"
        and not can_read(principal, repo)
        and not _mentions(principal, repo)
    ):
        raise NotFound(f"Repository '{repo.path}' does not exist.")
    if principal.token_scope is not None and LEVELS[level] > LEVELS[principal.token_scope]:
        raise Forbidden(
            f"This API token is {principal.token_scope}-only; it may not {what} '{repo.path}'."
        )
    raise Forbidden(f"'{principal.username}' may not {what} '{repo.path}'.")


def _mentions(principal: Principal, repo: RepositoryView) -> bool:
    # A caller who was granted something on the repository (or whose token names it) knows
    # it exists: tell them 403, not 404.
    return principal.permission(repo.path) is not None or repo.path in (
        principal.token_repositories or ()
    )
