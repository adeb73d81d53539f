"""Administration pages: repositories (create, change, delete, permissions), users, the audit
log, and refreshing cached proxy pages.

The same rules as the management API, through the same functions (`create`, `update`,
`delete` of `wheelyard.gateway.management.repositories`, `set_level` of `permissions`,
`add_user`, `change`, `remove_user` of `users`; `wheelyard.shared.domain.proxied` for the
cache): administrators create and delete repositories and manage users; a repository's admins
change it, its permissions and its cache, and see only what they may read (other private
repositories, a group's private members, upstream credentials are never shown); every change
is audited and takes effect from the next request on.
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
    Viewer,
    checked_form,
    field,
    require_administrator,
    require_signed_in,
    viewer_of,
)
from wheelyard.shared.auth.access import can_read, require_admin
from wheelyard.shared.auth.authenticator import load_user_record
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.config import format_duration
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


def _settings_from_form(form: FormData, current: RepositoryView | None) -> dict[str, Any]:
    """The settings a repository form describes (the fields of the API's `RepositoryChange`).
    Upstreams already configured keep their credentials, timeout and CA bundle when their URL
    (as shown, without credentials) is listed again."""
    kind = field(form, "type")
    known = {repositories.without_userinfo(u.url): u for u in current.upstreams} if current else {}
    ttl = field(form, "ttl")
    if ttl and not ttl.isdigit():
        raise InvalidInput("The freshness (TTL) is a whole number of seconds, or empty.")
    settings: dict[str, Any] = {
        "type": kind,
        "visibility": field(form, "visibility", "public"),
        "ttl": int(ttl) if ttl else None,
    }
    if kind == "proxy":
        settings["upstreams"] = [
            known[url].model_dump() if url in known else {"url": url}
            for url in _lines(field(form, "upstreams"))
        ]
        settings["cache_max_bytes"] = field(form, "cache_max_bytes") or None
        settings["cache_max_idle"] = field(form, "cache_max_idle") or None
    if kind == "group":
        settings["members"] = _lines(field(form, "members"))
        settings["allow_upstream"] = _lines(field(form, "allow_upstream"))
    return settings


async def _administrator(request: Request) -> Viewer:
    """The viewer of an administration page, who must be an administrator."""
    viewer = await viewer_of(request)
    require_administrator(request)
    return viewer


async def _administrator_form(request: Request) -> tuple[Viewer, FormData, Principal]:
    """A form an administrator posted: the viewer, the form (its CSRF token checked first),
    and the administrator."""
    viewer, form = await checked_form(request)
    return viewer, form, require_administrator(request)


def _admin_page(request: Request, viewer: Viewer, template: str, **context: Any) -> Response:
    """An administration page: never kept, not even by the browser."""
    return pages_of(request).render(request, viewer, template, store=False, **context)


@router.get("/admin/")
async def admin_home(request: Request, session: SessionDep) -> Response:
    """Every repository with links to its settings, and the other administration pages."""
    viewer = await _administrator(request)
    return _admin_page(
        request, viewer, "admin/index.html", repositories=await list_repositories(session)
    )


def _repository_form(
    request: Request, viewer: Viewer, known: list[RepositoryView], **context: Any
) -> Response:
    """The settings form; `known`: every repository, of which it names those the viewer
    may read (a repository's admin is not told which other private repositories exist)."""
    context.setdefault("error", None)
    context.setdefault("values", {})
    context.setdefault("members", [])
    context.setdefault("upstreams", [])
    context.setdefault("users", [])
    repo = context.get("repo")
    idle = repo.settings.get("cache_max_idle") if repo is not None else None
    context.setdefault("cache_max_idle", format_duration(int(idle)) if idle is not None else "")
    return _admin_page(
        request,
        viewer,
        "admin/repository_form.html",
        repositories=[v for v in known if can_read(viewer.principal, v)],
        **context,
    )


@router.get("/admin/repositories/new")
async def new_repository(request: Request, session: SessionDep) -> Response:
    """The form for a new repository."""
    viewer = await _administrator(request)
    return _repository_form(
        request, viewer, await list_repositories(session), repo=None, permissions=[]
    )


@router.post("/admin/repositories")
async def create_repository(request: Request, session: SessionDep) -> Response:
    """Create a repository (administrators)."""
    viewer, form, admin = await _administrator_form(request)
    storage, name = field(form, "storage", "default") or "default", field(form, "name")
    try:
        spec = repositories.repository_spec(
            {"storage": storage, "name": name} | _settings_from_form(form, None)
        )
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


async def _administered_form(
    request: Request, storage: str, repo: str
) -> tuple[Viewer, FormData, RepositoryView]:
    """A form one of the repository's admins posted: the viewer, the form (its CSRF token
    checked first), and the repository."""
    viewer, form = await checked_form(request)
    return viewer, form, await _administered(request, viewer, storage, repo)


@router.get("/repositories/{storage}/{repo}/settings")
async def repository_settings(
    request: Request, storage: str, repo: str, session: SessionDep
) -> Response:
    """The repository's settings and permissions (its admins)."""
    viewer = await viewer_of(request)
    view = await _administered(request, viewer, storage, repo)
    known = await list_repositories(session)
    by_path = {v.path: v for v in known}
    members = [
        m
        for m in view.members
        if m in by_path and can_read(viewer.principal, by_path[m], group=view)
    ]
    # Usernames are listed to administrators only, as by the API (`GET /api/v1/users`).
    users = [u.username for u in await accounts.list_users(session)] if viewer.is_admin else []
    return _repository_form(
        request,
        viewer,
        known,
        repo=view,
        members=members,
        upstreams=[repositories.without_userinfo(u.url) for u in view.upstreams],
        permissions=await accounts.permissions_of(session, view.id),
        users=users,
    )


@router.post("/repositories/{storage}/{repo}/settings")
async def change_repository(
    request: Request, storage: str, repo: str, session: SessionDep
) -> Response:
    """Change type, visibility, upstreams, members, TTL (the repository's admins)."""
    viewer, form, view = await _administered_form(request, storage, repo)
    settings = _settings_from_form(form, view)
    await repositories.update(request, session, viewer.principal, view.storage, view.name, settings)
    return RedirectResponse(urls.repository(storage, repo), status_code=303)


@router.post("/repositories/{storage}/{repo}/delete")
async def delete_repository(
    request: Request, storage: str, repo: str, session: SessionDep
) -> Response:
    """Delete a repository (administrators); one holding files only when confirmed."""
    _viewer, form, admin = await _administrator_form(request)
    force = field(form, "force") == "yes"
    await repositories.delete(request, session, admin, storage, repo, force=force)
    return RedirectResponse("/ui/admin/", status_code=303)


@router.post("/repositories/{storage}/{repo}/permissions")
async def set_permission(
    request: Request, storage: str, repo: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Give a user read, write or admin on the repository, or take it away (`none`)."""
    viewer, form, view = await _administered_form(request, storage, repo)
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
    viewer, _form, view = await _administered_form(request, storage, repo)
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


async def _users_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    *,
    status: int = 200,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """Every user and the form for a new one (with `error` and the `values` sent, when a
    creation was refused)."""
    return _admin_page(
        request,
        viewer,
        "admin/users.html",
        status=status,
        users=await accounts.list_users(session),
        error=error,
        values=values or {},
    )


@router.get("/admin/users")
async def users(request: Request, session: SessionDep) -> Response:
    """Every user, and a form for a new one."""
    return await _users_page(request, await _administrator(request), session)


@router.post("/admin/users")
async def create_user(request: Request, session: SessionDep) -> Response:
    """Create a user (administrators)."""
    viewer, form, admin = await _administrator_form(request)
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
        return await _users_page(
            request,
            viewer,
            session,
            status=409 if isinstance(exc, Conflict) else 400,
            error=exc.message,
            values={"username": username},
        )
    return RedirectResponse(urls.user(user.username), status_code=303)


@router.get("/admin/users/{username}")
async def user_page(request: Request, username: str, session: SessionDep) -> Response:
    """One user: admin flag, active state, a new password, their permissions and tokens."""
    viewer = await _administrator(request)
    user = await accounts.get_user(session, username)
    record = await load_user_record(session, username)
    tokens = await accounts.list_tokens(session, user.id)
    return _admin_page(
        request,
        viewer,
        "admin/user.html",
        user=user,
        permissions=record.permissions if record else (),
        tokens=[accounts.token_view(t, username) for t in tokens],
    )


@router.post("/admin/users/{username}")
async def change_user(
    request: Request, username: str, session: SessionDep, cache: CacheDep
) -> Response:
    """Change a user's admin flag, active state or password (administrators)."""
    _viewer, form, admin = await _administrator_form(request)
    password = form.get("password")
    new_password = password if isinstance(password, str) and password else None
    is_admin, is_active = field(form, "is_admin") == "yes", field(form, "is_active") == "yes"
    if username == admin.username and (not is_admin or not is_active):
        raise Conflict("You cannot take away your own administrator rights or deactivate yourself.")
    if username == admin.username and new_password is not None:
        # Your own needs the current one (as in the API): the account page asks for it.
        raise InvalidInput("Change your own password on your account page.")
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
    _viewer, _form, admin = await _administrator_form(request)
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
    viewer = await _administrator(request)
    events = await accounts.audit_events(
        session,
        limit=AUDIT_PAGE,
        before_id=before,
        action=action or None,
        actor=actor or None,
        target=target or None,
    )
    return _admin_page(
        request,
        viewer,
        "admin/audit.html",
        events=events,
        filters={"action": action, "actor": actor, "target": target},
        older=events[-1].id if len(events) == AUDIT_PAGE else None,
    )
