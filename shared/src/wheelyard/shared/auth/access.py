"""What a caller may do with a repository: read < write < admin.

- Anyone may read a public repository: that is the floor of every caller's rights. A
  credential only ever adds to what anonymous callers may do, never takes away: a token for
  `default/local` still reads the public root `/simple/` (the public group `default/all`), as
  a browser would without it.
- The global administrator may do everything (within an API token's limits).
- Otherwise the user's own level on the repository decides.
- An API token opens only the repositories it lists, and at most its scope (read or write).
  A group the token lists opens its members as far as the user may read them: a member is
  checked against the group (`group=`), and then against the user's own permissions.
- Unauthenticated callers get 401 (pip and uv then retry with credentials), authenticated ones
  403, and a private repository the caller may not read is reported as missing (404), with the
  very message a repository that does not exist gets (`missing`), so that no answer tells who
  may not read it whether it exists.
"""

from __future__ import annotations

from wheelyard.shared.auth.principal import LEVELS, Principal
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import Forbidden, NotFound, Unauthenticated, WheelyardError

_READ = LEVELS["read"]


def allowed(
    principal: Principal, repo: RepositoryView, level: str, *, group: RepositoryView | None = None
) -> bool:
    """True when `principal` may act on `repo` at `level` (read, write or admin); `group` is
    the group through which `repo` is being read, when it is a member being read through one."""
    need = LEVELS[level]
    if need == _READ and repo.visibility == "public":
        return True  # anonymous rights: no credential has fewer
    if principal.token_scope is not None:
        if need > LEVELS[principal.token_scope]:
            return False
        opened = principal.token_repositories or ()
        if repo.path not in opened and (group is None or group.path not in opened):
            return False
    if principal.is_admin:
        return True
    have = principal.permission(repo.path)
    return have is not None and LEVELS[have] >= need


def can_read(
    principal: Principal, repo: RepositoryView, *, group: RepositoryView | None = None
) -> bool:
    """True when `principal` may read `repo` (a member of `group`, when given)."""
    return allowed(principal, repo, "read", group=group)


def require_read(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` may read `repo`."""
    if not can_read(principal, repo):
        raise denial(principal, repo, "read")


def require_write(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` may upload to, yank in or change `repo`."""
    if not allowed(principal, repo, "write"):
        raise denial(principal, repo, "write")


def require_admin(principal: Principal, repo: RepositoryView) -> None:
    """Raise unless `principal` administers `repo` (delete files, manage its cache)."""
    if not allowed(principal, repo, "admin"):
        raise denial(principal, repo, "admin")


def missing(principal: Principal, path: str) -> WheelyardError:
    """The error for a repository `path` that does not exist: the very error a private one
    that the caller may not read gets (401 for anonymous callers, so that pip asks for
    credentials either way; 404 with the same message for everyone else)."""
    if not principal.authenticated:
        return Unauthenticated(f"Authentication required for '{path}'.")
    return NotFound(f"Repository '{path}' does not exist.")


def denial(principal: Principal, repo: RepositoryView, level: str) -> WheelyardError:
    """Why `principal` may not act on `repo` at `level`, as the caller may be told: 401
    without credentials, 404 (as if missing) for a private repository they may not read and
    were never granted anything on, else 403 saying what is missing."""
    if not principal.authenticated or (
        repo.visibility == "private"
        and not can_read(principal, repo)
        and not _mentions(principal, repo)
    ):
        return missing(principal, repo.path)
    what = _WHAT[level]
    if principal.token_scope is not None and LEVELS[level] > LEVELS[principal.token_scope]:
        return Forbidden(
            f"This API token is {principal.token_scope}-only; it may not {what} '{repo.path}'."
        )
    if principal.token_scope is not None and level == "read":
        return Forbidden(f"This API token does not open '{repo.path}'.")
    return Forbidden(f"'{principal.username}' may not {what} '{repo.path}'.")


_WHAT = {"read": "read", "write": "upload to or change packages in", "admin": "administer"}


def _mentions(principal: Principal, repo: RepositoryView) -> bool:
    # A caller who was granted something on the repository (or whose token names it) knows
    # it exists: tell them 403, not 404.
    return principal.permission(repo.path) is not None or repo.path in (
        principal.token_repositories or ()
    )
