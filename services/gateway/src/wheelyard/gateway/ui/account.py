"""Signing in and out, your own password, and your own API tokens.

Sign-in checks the password exactly as the API does (`Authenticator.by_password`, method
`ui-sign-in`: the same throttling per account and address, the same timing for unknown names,
every refusal audited as `auth.failed`) and a success is audited like
`POST /api/v1/auth/token`. A password is changed through the API's own `users.change` (the
current password proven the same way, method `password-change`). Tokens are made and revoked
by the API's own `tokens.issue_token` and `tokens.revoke`: the secret is shown once, on a page
no cache may keep, and only its hash is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from wheelyard.gateway.management import tokens as tokens_api
from wheelyard.gateway.management import users
from wheelyard.gateway.management.guards import audit, client_address
from wheelyard.gateway.management.tokens import TokenId
from wheelyard.gateway.ui.render import UiRoute, pages_of
from wheelyard.gateway.ui.viewer import (
    checked_form,
    clear_session_cookie,
    field,
    fields,
    require_signed_in,
    set_session_cookie,
    viewer_of,
)
from wheelyard.shared.auth.access import can_read
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.sessions import SessionStore
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts
from wheelyard.shared.domain.repositories import list_repositories
from wheelyard.shared.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated
from wheelyard.shared.web.deps import CacheDep, SessionDep

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def _next_page(value: str | None) -> str:
    # Only a page of the web interface, never another site (`//evil.example`, `/\evil`).
    if not value or not value.startswith("/ui/") or "\\" in value:
        return "/ui/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/ui/"


@router.get("/signin")
async def signin_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """The sign-in form."""
    viewer = await viewer_of(request)
    return pages_of(request).render(
        request, viewer, "signin.html", store=False, next=_next_page(next), error=None
    )


@router.post("/signin")
async def signin(request: Request, session: SessionDep) -> Response:
    """Check the password, start a session, go where the viewer was going."""
    viewer, form = await checked_form(request)
    username, password = field(form, "username"), form.get("password")
    target = _next_page(field(form, "next"))
    authenticator: Authenticator = request.app.state.authenticator
    try:
        if not username or not isinstance(password, str) or not password:
            raise Unauthenticated("Enter your username and password.")
        # Throttled, and audited when refused, by the authenticator (as every sign-in is).
        principal = await authenticator.by_password(
            username, password, client_address(request), method="ui-sign-in"
        )
    except (Unauthenticated, RateLimited) as exc:
        page = pages_of(request).render(
            request,
            viewer,
            "signin.html",
            status=429 if isinstance(exc, RateLimited) else 400,
            store=False,
            next=target,
            error=exc.message,
            username=username,
        )
        if isinstance(exc, RateLimited):
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    record = await authenticator.user_record(username)
    assert record is not None and principal.username is not None
    store: SessionStore = request.app.state.ui.sessions
    session_id, _ = await store.start(principal.username, record.password_changed)
    await begin_write(session)
    audit(request, session, principal.username, "auth.login", detail={"via": "web"})
    await session.commit()
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, session_id, secure=viewer.secure, max_age=store.lifetime)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End the session (on the server: the cookie is worthless afterwards)."""
    viewer, _form = await checked_form(request)
    store: SessionStore = request.app.state.ui.sessions
    await store.end(request.cookies.get("wheelyard_session"))
    response = RedirectResponse("/ui/", status_code=303)
    clear_session_cookie(response, secure=viewer.secure)
    return response


@router.get("/account")
async def account(request: Request, session: SessionDep) -> Response:
    """Your account: change your password; your tokens."""
    viewer = await viewer_of(request)
    require_signed_in(request)
    return pages_of(request).render(
        request, viewer, "account.html", private=True, message=None, error=None
    )


@router.post("/account/password")
async def change_password(request: Request, session: SessionDep, cache: CacheDep) -> Response:
    """Change your own password (the current one first). Every session of yours ends; this
    browser is signed in again with the new password."""
    viewer, form = await checked_form(request)
    principal = require_signed_in(request)
    if principal.token_scope is not None:
        raise Forbidden("Sign in with your password to change it.")
    authenticator: Authenticator = request.app.state.authenticator
    current, new, again = form.get("current"), form.get("password"), form.get("again")
    if not all(isinstance(v, str) for v in (current, new, again)) or new != again:
        raise InvalidInput("The new password and its repetition differ.")
    assert isinstance(current, str) and isinstance(new, str) and principal.username
    # The current password is proven there, throttled and audited like a sign-in.
    await users.change(
        request,
        session,
        cache,
        principal,
        principal.username,
        password=new,
        current_password=current,
    )
    store: SessionStore = request.app.state.ui.sessions
    await store.end(viewer.session_id)
    record = await authenticator.user_record(principal.username)
    assert record is not None
    session_id, _ = await store.start(principal.username, record.password_changed)
    response = RedirectResponse("/ui/account?changed=1", status_code=303)
    set_session_cookie(response, session_id, secure=viewer.secure, max_age=store.lifetime)
    return response


@router.get("/tokens")
async def tokens(request: Request, session: SessionDep) -> Response:
    """Your API tokens (never their secrets) and a form for a new one."""
    viewer = await viewer_of(request)
    principal = require_signed_in(request)
    mine = await accounts.list_tokens(session, principal.user_id)
    repos = [v for v in await list_repositories(session) if can_read(principal, v)]
    return pages_of(request).render(
        request,
        viewer,
        "tokens.html",
        private=True,
        tokens=[accounts.token_view(t, principal.username) for t in mine],
        repositories=repos,
        created=None,
    )


def _expiry(value: str) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput("Give the expiry date as YYYY-MM-DD.") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


@router.post("/tokens")
async def create_token(request: Request, session: SessionDep) -> Response:
    """Create a token and show its secret this once."""
    viewer, form = await checked_form(request)
    principal = require_signed_in(request)
    created = await tokens_api.issue_token(
        request,
        session,
        principal,
        name=field(form, "name"),
        repositories=fields(form, "repositories"),
        scope=field(form, "scope", "read"),
        expires_at=_expiry(field(form, "expires")),
    )
    return pages_of(request).render(
        request,
        viewer,
        "token_created.html",
        store=False,
        status=201,
        token=accounts.token_view(created.row, principal.username),
        secret=created.value,
    )


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, token_id: TokenId, session: SessionDep, cache: CacheDep
) -> Response:
    """Revoke one of your tokens (administrators: anyone's); refused from the next request."""
    _viewer, _form = await checked_form(request)
    await tokens_api.revoke(request, session, cache, require_signed_in(request), token_id)
    return RedirectResponse("/ui/tokens", status_code=303)
