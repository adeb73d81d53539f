"""Administration pages: repositories (create, change, delete, permissions), users, the audit
log, and refreshing cached proxy pages.

The same rules as the management API, through the same domain functions
(`wheelyard.shared.domain.repositories`, `accounts`, `proxied`): administrators create and
delete repositories and manage users; a repository's admins change it, its permissions and
its cache; every change is audited and takes effect from the next request on.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from packaging.utils import canonicalize_name
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from wheelyard.gateway.management import permissions, repositories
from wheelyard.gateway.management import users as users_api
from wheelyard.gateway.management.guards import audit
from wheelyard.gateway.ui import urls
from wheelyard.gateway.ui.browse import readable
from wheelyard.gateway.ui.render import UiRoute, pages_of
from wheelyard.gateway.ui.viewer import (
    CSRF_FIELD,
    Viewer,
    checked_form,
    field,
    require_administrator,
    require_signed_in,
    viewer_of,
)
from wheelyard.shared.auth.access import require_admin
from wheelyard.shared.auth.authenticator import load_user_record
from wheelyard.shared.config import RepositoryConfig
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts, proxied
from wheelyard.shared.domain.repositories import (
    RepositoryView,
    list_repositories,
)
from wheelyard.shared.errors import Conflict, InvalidInput, NotFound, WheelyardError
from wheelyard.shared.web.deps import CacheDep, SessionDep

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

AUDIT_PAGE = 100


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _spec_from_form(
    form: FormData, storage: str, name: str, current: RepositoryView | None
) -> RepositoryConfig:
    """The repository a settings form describes. Upstreams already configured keep their
    credentials and timeout when their URL is listed again."""
    kind = field(form, "type")
    known = {u.url: u for u in current.upstreams} if current else {}
    upstreams = [
        known[url].model_dump() if url in known else {"url": url}
        for url in _lines(field(form, "upstreams"))
    ]
    ttl = field(form, "ttl")
    if ttl and not ttl.isdigit():
        raise InvalidInput("The freshness (TTL) is a whole number of seconds, or empty.")
    data: dict[str, Any] = {
        "storage": storage,
        "name": name,
        "type": kind,
        "visibility": field(form, "visibility", "public"),
        "upstreams": upstreams if kind == "proxy" else [],
        "members": _lines(field(form, "members")) if kind == "group" else [],
        "allow_upstream": _lines(field(form, "allow_upstream")) if kind == "group" else [],
        "ttl": int(ttl) if ttl else None,
    }
    return repositories.repository_spec(data)


@router.get("/admin/")
async def admin_home(request: Request, session: SessionDep) -> Response:
    """Every repository with links to its settings, and the other administration pages."""
    viewer = await viewer_of(request)
    require_administrator(request)
    return pages_of(request).render(
        request,
        viewer,
        "admin/index.html",
        store=False,
        repositories=await list_repositories(session),
    )


def _repository_form(
    request: Request, viewer: Viewer, repositories: list[RepositoryView], **context: Any
) -> Response:
    context.setdefault("error", None)
    context.setdefault("values", {})
    return pages_of(request).render(
        request,
        viewer,
        "admin/repository_form.html",
        store=False,
        repositories=repositories,
        **context,
    )


@router.get("/admin/repositories/new")
async def new_repository(request: Request, session: SessionDep) -> Response:
    """The form for a new repository."""
    viewer = await viewer_of(request)
    require_administrator(request)
    return _repository_form(
        request, viewer, await list_repositories(session), repo=None, permissions=[]
    )


@router.post("/admin/repositories")
async def create_repository(request: Request, session: SessionDep) -> Response:
    """Create a repository (administrators)."""
    viewer, form = await checked_form(request)
    admin = require_administrator(request)
    storage, name = field(form, "storage", "default") or "default", field(form, "name")
    try:
        spec = _spec_from_form(form, storage, name, None)
        view = await repositories.create(request, session, admin, spec)
    except WheelyardError as exc:
        await session.rollback()
        return _repository_form(
            request,
            viewer,
            await list_repositories(session),
            repo=None,
            permissions=[],
            error=exc.message,
            values=dict(form),
        )
    return RedirectResponse(urls.repository(view.storage, view.name), status_code=303)


async def _administered(
    request: Request, viewer: Viewer, storage: str, repo: str
) -> RepositoryView:
    require_signed_in(request)
    view = await readable(request, viewer, storage, repo)
    require_admin(viewer.principal, view)
    return view


@router.get("/repositories/{storage}/{repo}/settings")
async def repository_settings(
    request: Request, storage: str, repo: str, session: SessionDep
) -> Response:
    """The repository's settings and permissions (its admins)."""
    viewer = await viewer_of(request)
    view = await _administered(request, viewer, storage, repo)
    return _repository_form(
        request,
        viewer,
        await list_repositories(session),
        repo=view,
        permissions=await accounts.permissions_of(session, view.id),
        users=[u.username for u in await accounts.list_users(session)],
    )


@router.post("/repositories/{storage}/{repo}/settings")
async def change_repository(
    request: Request, storage: str, repo: str, session: SessionDep
) -> Response:
    """Change type, visibility, upstreams, members, TTL (the repository's admins)."""
    viewer, form = await checked_form(request)
    view = await _administered(request, viewer, storage, repo)
    await begin_write(session)
    spec = _spec_from_form(form, view.storage, view.name, view)
    changed = [key for key in form if key != CSRF_FIELD]
    await repositories.update(request, session, viewer.principal, spec, changed)
    return RedirectResponse(urls.repository(storage, repo), status_code=303)


@router.post("/repositories/{storage}/{repo}/delete")
async def delete_repository(
    request: Request, storage: str, repo: str, session: SessionDep
) -> Response:
    """Delete a repository (administrators); one holding files only when confirmed."""
    _viewer, form = await checked_form(request)
    admin = require_administrator(request)
    force = field(form, "force") == "yes"
    await repositories.delete(request, session, admin, storage, repo, force=force)
    return RedirectResponse("/ui/admin/", status_code=303)


@router.post("/repositories/{storage}/{repo}/permissions")
async def set_permission(
    request: Request, storage: str, repo: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Give a user read, write or admin on the repository, or take it away (`none`)."""
    viewer, form = await checked_form(request)
    view = await _administered(request, viewer, storage, repo)
    username, level = field(form, "username"), field(form, "level")
    await permissions.set_level(
        request,
        session,
        cache,
        viewer.principal,
        view.storage,
        view.name,
        username,
        None if level == "none" else level,
    )
    return RedirectResponse(urls.settings(storage, repo), status_code=303)


@router.post("/repositories/{storage}/{repo}/cache/{project}/refresh")
async def refresh_cached(
    request: Request, storage: str, repo: str, project: str, session: SessionDep
) -> Response:
    """Expire a cached proxy page: the next request fetches it from the upstream in full."""
    viewer, _form = await checked_form(request)
    view = await _administered(request, viewer, storage, repo)
    if view.type != "proxy":
        raise NotFound(f"Repository '{view.path}' is not a proxy repository.")
    name = canonicalize_name(project)
    backends = request.app.state.runtime.backends
    if not await proxied.expire(backends.sessions, backends.cache, view.id, name):
        raise NotFound(f"Project '{name}' is not cached in '{view.path}'.")
    await begin_write(session)
    audit(
        request,
        session,
        viewer.username,
        "cache.refresh",
        target=f"{view.path}/{name}",
        detail={"via": "web"},
    )
    await session.commit()
    return RedirectResponse(urls.repository(storage, repo) + "#cached", status_code=303)


# -- users ------------------------------------------------------------------------------------


@router.get("/admin/users")
async def users(request: Request, session: SessionDep) -> Response:
    """Every user, and a form for a new one."""
    viewer = await viewer_of(request)
    require_administrator(request)
    return pages_of(request).render(
        request,
        viewer,
        "admin/users.html",
        store=False,
        users=await accounts.list_users(session),
        error=None,
        values={},
    )


@router.post("/admin/users")
async def create_user(request: Request, session: SessionDep) -> Response:
    """Create a user (administrators)."""
    viewer, form = await checked_form(request)
    admin = require_administrator(request)
    username, password = field(form, "username"), form.get("password")
    try:
        user = await users_api.add_user(
            request,
            session,
            admin,
            username=username,
            password=password if isinstance(password, str) else "",
            is_admin=field(form, "is_admin") == "yes",
        )
    except WheelyardError as exc:
        await session.rollback()
        return pages_of(request).render(
            request,
            viewer,
            "admin/users.html",
            store=False,
            status=409 if isinstance(exc, Conflict) else 400,
            users=await accounts.list_users(session),
            error=exc.message,
            values={"username": username},
        )
    return RedirectResponse(urls.user(user.username), status_code=303)


@router.get("/admin/users/{username}")
async def user_page(request: Request, username: str, session: SessionDep) -> Response:
    """One user: admin flag, active state, a new password, their permissions and tokens."""
    viewer = await viewer_of(request)
    require_administrator(request)
    user = await accounts.get_user(session, username)
    record = await load_user_record(session, username)
    tokens = await accounts.list_tokens(session, user.id)
    return pages_of(request).render(
        request,
        viewer,
        "admin/user.html",
        store=False,
        user=user,
        permissions=record.permissions if record else (),
        tokens=[accounts.token_view(t, username) for t in tokens],
    )


@router.post("/admin/users/{username}")
async def change_user(
    request: Request, username: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Change a user's admin flag, active state or password (administrators)."""
    _viewer, form = await checked_form(request)
    admin = require_administrator(request)
    password = form.get("password")
    new_password = password if isinstance(password, str) and password else None
    is_admin, is_active = field(form, "is_admin") == "yes", field(form, "is_active") == "yes"
    if username == admin.username and (not is_admin or not is_active):
        raise Conflict("You cannot take away your own administrator rights or deactivate yourself.")
    await users_api.change(
        request,
        session,
        cache,
        admin,
        username,
        password=new_password,
        is_admin=is_admin,
        is_active=is_active,
    )
    return RedirectResponse(urls.user(username), status_code=303)


@router.post("/admin/users/{username}/delete")
async def delete_user(
    request: Request, username: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Delete a user with their permissions and tokens (administrators)."""
    _viewer, _form = await checked_form(request)
    admin = require_administrator(request)
    await users_api.remove_user(request, session, cache, admin, username)
    return RedirectResponse("/ui/admin/users", status_code=303)


# -- audit ------------------------------------------------------------------------------------

Filter = Annotated[str, Query(max_length=150)]


@router.get("/admin/audit")
async def audit_log(
    request: Request,
    session: SessionDep,
    action: Filter = "",
    actor: Filter = "",
    target: Annotated[str, Query(max_length=512)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Audit events, newest first, filtered by action, actor and target; paged."""
    viewer = await viewer_of(request)
    require_administrator(request)
    events = await accounts.audit_events(
        session,
        limit=AUDIT_PAGE,
        before_id=before,
        action=action or None,
        actor=actor or None,
        target=target or None,
    )
    return pages_of(request).render(
        request,
        viewer,
        "admin/audit.html",
        store=False,
        events=events,
        filters={"action": action, "actor": actor, "target": target},
        older=events[-1].id if len(events) == AUDIT_PAGE else None,
    )
