"""The caller of a request, as the gateway established it and services receive it."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = {"read": 1, "write": 2, "admin": 3}
SCOPES = ("read", "write")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (possibly through an API token), or anonymous (`username` None).

    `permissions` are the user's per-repository levels as sorted (`storage/repo`, level) pairs
    (a tuple, so a Principal is hashable). An API token narrows what the user may do:
    `token_scope` (read or write) caps the level, `token_repositories` lists the only
    repositories it opens.
    """

    username: str | None = None
    user_id: int | None = None
    is_admin: bool = False
    permissions: tuple[tuple[str, str], ...] = ()
    token_id: int | None = None
    token_scope: str | None = None
    token_repositories: frozenset[str] | None = None

    @property
    def authenticated(self) -> bool:
        """True for a verified user."""
        return self.username is not None

    def permission(self, repository_path: str) -> str | None:
        """The user's own level on `storage/repo`, or None."""
        for path, level in self.permissions:
            if path == repository_path:
                return level
        return None


ANONYMOUS = Principal()
