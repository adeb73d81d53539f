"""Dispatch: which service answers a request, from the route table and the repository's kind.

`/simple/...` and `/pypi/...` at the root are aliases of `/repositories/default/all/...` (the
default group). Then the route table (`wheelyard.shared.routes`) names the service: index,
upload, proxy-cache, or the reader of the repository's kind (hosted and unknown repositories
are the index's, which answers the 404 in one consistent way; proxy and group repositories
the proxy-cache's). Paths the table does not know are the gateway's own (management API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Scope

from wheelyard.shared import routes
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.web.fastpath import SCOPE_KEY
from wheelyard.shared.web.observe import set_route

#: Where the root aliases point: the default group.
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
    """Picks the service for each HTTP request; None means the gateway's own routes (paths the
    table does not know, and its `GATEWAY` routes)."""

    def __init__(self, targets: Targets, kinds: KindLookup) -> None:
        self.targets = targets
        self.kinds = kinds
        self._fixed = {
            routes.Target.INDEX: targets.index,
            routes.Target.UPLOAD: targets.upload,
            routes.Target.PROXY_CACHE: targets.proxy_cache,
        }

    async def route(self, scope: Scope) -> tuple[Scope, ASGIApp | None]:
        """The (alias-rewritten) scope, carrying its route match, and the app that answers."""
        scope = apply_alias(scope)
        found = routes.match(scope["method"], scope["path"])
        if found is None:
            return scope, None
        scope[SCOPE_KEY] = found
        set_route(scope, found.route.name)
        if found.route.target is routes.Target.GATEWAY:
            return scope, None  # the gateway's own routes answer it
        return scope, await self.target_of(found)

    async def target_of(self, found: routes.Match) -> ASGIApp:
        """The app behind a matched route."""
        target = found.route.target
        if target is not routes.Target.READER:
            return self._fixed[target]
        kind = await self.kinds(found.params["storage"], found.params["repo"])
        return self.targets.proxy_cache if kind in ("proxy", "group") else self.targets.index


def apply_alias(scope: Scope) -> Scope:
    """A copy of `scope` (the original is never changed), its root-alias path (`/simple/...`)
    rewritten to the default group's path."""
    scope = dict(scope)
    path: str = scope["path"]
    for alias in ALIASES:
        if path == alias or path.startswith(alias + "/"):
            new_path = ALIAS_TARGET + path
            scope["path"] = new_path
            scope["raw_path"] = new_path.encode("latin-1")
            break
    return scope
