"""Who is looking at a page of the web interface, and the CSRF check of every form they post.

A viewer is signed in through a browser session (cookie `wheelyard_session`, see
`wheelyard.shared.auth.sessions`), or through the request's own Authorization header (as the
gateway authenticated it), or is anonymous.

Forgery protection, for every POST of the web interface:
- the form carries a token: the session's CSRF secret, or before sign-in (and for browsers
  that send an Authorization header) the value of the `wheelyard_csrf` cookie (double submit);
- a request whose `Origin` names another origin, or whose `Sec-Fetch-Site` says it came from
  another site, is refused whatever it carries;
- cookies are SameSite=Lax, so other sites' forms do not even carry them.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response

from wheelyard.gateway.management.guards import administrator, signed_in
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.auth.sessions import BrowserSession, SessionStore
from wheelyard.shared.errors import Forbidden, InvalidInput, TooLarge
from wheelyard.shared.web.base_url import base_url

SESSION_COOKIE = "wheelyard_session"
CSRF_COOKIE = "wheelyard_csrf"
CSRF_FIELD = "csrf_token"
#: The largest form the web interface reads (its forms are a few short fields).
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 64


@dataclass
class Viewer:
    """The caller of a web-interface request (see the module docstring)."""

    principal: Principal
    session: BrowserSession | None
    session_id: str | None
    #: The browser's CSRF cookie, when it sent a well-formed one.
    csrf_cookie: str | None
    secure: bool
    base: str
    #: A CSRF cookie value minted for this response (only when a form needed one).
    new_csrf_cookie: str | None = None

    @property
    def csrf(self) -> str:
        """The token this viewer's forms carry: the session's secret, else the CSRF cookie's
        value (minted, and set on the response, the first time a page needs it)."""
        if self.session is not None:
            return self.session.csrf
        if self.csrf_cookie is None:
            if self.new_csrf_cookie is None:
                self.new_csrf_cookie = secrets.token_urlsafe(32)
            return self.new_csrf_cookie
        return self.csrf_cookie

    def expected_csrf(self) -> str | None:
        """The token a posted form must carry, or None when the browser has none yet."""
        return self.session.csrf if self.session is not None else self.csrf_cookie

    @property
    def signed_in(self) -> bool:
        """True for a known user."""
        return self.principal.authenticated

    @property
    def is_admin(self) -> bool:
        """True for an administrator acting without an API token (may use the admin pages)."""
        return self.principal.is_admin and self.principal.token_scope is None

    @property
    def username(self) -> str | None:
        """The user's name, when signed in."""
        return self.principal.username


async def viewer_of(request: Request) -> Viewer:
    """The viewer of `request`. Sets `request.state.principal` to the session's user, so the
    management guards (`signed_in`, `administrator`, `audit`) see the same caller."""
    cached: Viewer | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    state = request.app.state
    settings = state.runtime.backends.settings
    base = base_url(request, settings)
    principal: Principal = getattr(request.state, "principal", None) or Principal()
    session = session_id = None
    if not principal.authenticated:
        store: SessionStore = state.ui.sessions
        authenticator: Authenticator = state.authenticator
        session_id = request.cookies.get(SESSION_COOKIE)
        found = await store.principal(session_id, authenticator) if session_id else None
        if found is not None:
            principal, session = found
            request.state.principal = principal
    cookie = request.cookies.get(CSRF_COOKIE)
    viewer = Viewer(
        principal=principal,
        session=session,
        session_id=session_id if session else None,
        csrf_cookie=cookie if cookie and 32 <= len(cookie) <= 64 else None,
        secure=base.startswith("https://"),
        base=base,
    )
    request.state.viewer = viewer
    return viewer


def set_cookies(response: Response, viewer: Viewer) -> None:
    """Add the cookies `viewer` needs to `response` (a freshly minted CSRF cookie)."""
    if viewer.new_csrf_cookie:
        response.set_cookie(
            CSRF_COOKIE,
            viewer.new_csrf_cookie,
            path="/ui/",
            httponly=True,
            samesite="strict",
            secure=viewer.secure,
        )


def set_session_cookie(response: Response, session_id: str, *, secure: bool, max_age: int) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS, for the web interface."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=max_age,
        path="/ui/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    """Tell the browser to forget its session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path="/ui/", httponly=True, samesite="lax", secure=secure
    )


def _same_origin(request: Request, viewer: Viewer) -> bool:
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null":
            return False
        # The configured public URL, or the origin this very request was sent to.
        own = {viewer.base, f"{request.url.scheme}://{request.headers.get('host', '')}"}
        parts = urlsplit(origin)
        return f"{parts.scheme}://{parts.netloc}" in own
    site = request.headers.get("sec-fetch-site")
    return site is None or site in ("same-origin", "none")


async def checked_form(request: Request) -> tuple[Viewer, FormData]:
    """The posted form of a web-interface request, after the forgery checks (403 when they
    fail) and within the size limits (413/400)."""
    viewer = await viewer_of(request)
    if not _same_origin(request, viewer):
        raise Forbidden("This form was sent from another site; it was refused.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise TooLarge("This form is too large.")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidInput("Send the form as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLarge("This form is too large.")
    # Parsed by Starlette from the bytes read above (the stream is consumed once).
    request._body = body
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    token, expected = form.get(CSRF_FIELD), viewer.expected_csrf()
    if (
        not isinstance(token, str)
        or expected is None
        or not hmac.compare_digest(token.encode(), expected.encode())
    ):
        raise Forbidden(
            "This form has expired or did not come from this site. Reload the page and try again."
        )
    return viewer, form


def field(form: FormData, name: str, default: str = "") -> str:
    """A text field of `form`, stripped (the default when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def fields(form: FormData, name: str) -> list[str]:
    """Every non-empty value of a repeated field (checkboxes, multi-selects)."""
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def require_signed_in(request: Request) -> Principal:
    """The viewer, who must be signed in (Unauthenticated otherwise: the sign-in page)."""
    return signed_in(request)


def require_administrator(request: Request) -> Principal:
    """The viewer, who must be an administrator signed in without an API token."""
    return administrator(request)
