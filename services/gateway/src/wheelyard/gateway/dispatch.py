"""Dispatch: which service answers a request, decided from its path, method and repository kind.

The rules (the gateway's own FastAPI app answers everything not listed):

| request | target |
|---|---|
| `/simple/...`, `/pypi/...` (root aliases) | as `/repositories/default/all/...` |
| `POST`/`PUT` under `/repositories/<s>/<r>/` | upload |
| `GET`/`HEAD` under `/repositories/<s>/<r>/`, hosted | index |
| `GET`/`HEAD` under `/repositories/<s>/<r>/`, proxy or group | proxy-cache |
| `/api/v1/search` | index |
| `/api/v1/repositories/<s>/<r>/projects/...`: yank, unyank, DELETE | upload |
| `GET /api/v1/repositories/<s>/<r>/projects/...` | index or proxy-cache by kind |
| `/api/v1/repositories/<s>/<r>/cache/...` | proxy-cache |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Scope

from wheelyard.shared.db.registry import RepositoryDirectory

#: Where the root aliases point: the default group, as the issue tracker's users expect.
ALIAS_TARGET = "/repositories/default/all"
ALIASES = ("/simple", "/pypi")


@dataclass
class Targets:
    """The service apps requests are dispatched to (the gateway's own routes are not one)."""

    index: ASGIApp
    upload: ASGIApp
    proxy_cache: ASGIApp


KindLookup = Callable[[str, str], Awaitable[str | None]]


def kinds_from(directory: RepositoryDirectory) -> KindLookup:
    """Repository kind (`hosted`/`proxy`/`group`) by `storage/name`, from the in-memory
    directory (the hot path does not query the database on every request)."""

    async def kind(storage: str, name: str) -> str | None:
        view = await directory.get(storage, name)
        return view.type if view else None

    return kind


class Dispatcher:
    """Picks the service for each HTTP request; None means the gateway's own routes."""

    def __init__(self, targets: Targets, kinds: KindLookup) -> None:
        self.targets = targets
        self.kinds = kinds

    async def route(self, scope: Scope) -> tuple[Scope, ASGIApp | None]:
        """The (possibly alias-rewritten) scope and the service app that answers it."""
        scope = apply_alias(scope)
        return scope, await self.choose(scope["method"], scope["path"])

    async def choose(self, method: str, path: str) -> ASGIApp | None:
        """The target for `method path` (the path after alias rewriting)."""
        t = self.targets
        parts = path.split("/")
        # parts[0] is "" because paths start with "/".
        if len(parts) >= 4 and parts[1] == "repositories":
            if method in ("POST", "PUT"):
                return t.upload
            return await self._reader(parts[2], parts[3])
        if len(parts) >= 4 and parts[1] == "api" and parts[2] == "v1":
            if parts[3] == "search":
                return t.index
            if parts[3] == "repositories" and len(parts) >= 8:
                section = parts[6]
                if section == "cache":
                    return t.proxy_cache
                if section == "projects":
                    if method in ("POST", "DELETE", "PUT", "PATCH"):
                        return t.upload
                    return await self._reader(parts[4], parts[5])
        return None

    async def _reader(self, storage: str, name: str) -> ASGIApp:
        kind = await self.kinds(storage, name)
        if kind in ("proxy", "group"):
            return self.targets.proxy_cache
        # Hosted, and unknown repositories too: the index answers the 404 in one consistent way.
        return self.targets.index


def apply_alias(scope: Scope) -> Scope:
    """Rewrite a root-alias path (`/simple/...`) to the default group's path."""
    path: str = scope["path"]
    for alias in ALIASES:
        if path == alias or path.startswith(alias + "/"):
            new_path = ALIAS_TARGET + path
            scope = dict(scope)
            scope["path"] = new_path
            scope["raw_path"] = new_path.encode("latin-1")
            return scope
    return scope
