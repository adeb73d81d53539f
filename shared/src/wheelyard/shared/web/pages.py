"""HTTP shaping of simple pages, shared by every read path (hosted, proxy, group).

One implementation of the caching headers, the ETag/304 dance, Accept negotiation and project
path segments, so a page looks the same on the wire whichever service rendered it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import InvalidInput, NotFound
from wheelyard.shared.packaging.names import validate_project_name
from wheelyard.shared.web import replay
from wheelyard.shared.web.base_url import shareable_base
from wheelyard.shared.web.conditional import if_none_match_matches
from wheelyard.shared.web.negotiation import content_type_for, negotiate
from wheelyard.shared.web.pagecache import CachedPage

#: Added to a page served from the last good copy because the upstream could not be asked.
STALE_HEADERS = {"X-Wheelyard-Stale": "true", "Warning": '110 - "Response is Stale"'}


def cache_control(request: Request, repo: RepositoryView, *, immutable: bool = False) -> str:
    """Cache-Control for a response from `repo`."""
    # Anything fetched with credentials, or from a private repository, must never be stored by
    # a shared cache (RFC 9111 §3.5; artifact-keeper PR #3414); nor anything whose
    # links carry a Host the operator did not allow (cache poisoning, base_url.py).
    private = (
        repo.visibility == "private"
        or "authorization" in request.headers
        or not shareable_base(request, request.app.state.runtime.backends.settings)
    )
    if immutable:
        return ("private" if private else "public") + ", max-age=31536000, immutable"
    return "private, no-cache" if private else "public, max-age=0, must-revalidate"


def page_response(
    request: Request,
    repo: RepositoryView,
    page: CachedPage,
    media: str,
    *,
    extra_headers: Mapping[str, str] | None = None,
) -> Response:
    """A simple page with ETag, Vary and 304 handling (plus `extra_headers`, e.g. stale)."""
    headers = {
        "ETag": page.etag,
        "Vary": "Accept, Authorization",
        "Cache-Control": cache_control(request, repo),
        **(extra_headers or {}),
    }
    if if_none_match_matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    if extra_headers is None and headers["Cache-Control"].startswith("public"):
        # The same bytes for anyone who asks again until something changes: the server may
        # answer the next such request without running the app (web/replay.py).
        replay.accept(request.scope)
    return Response(page.body, headers=headers, media_type=content_type_for(media))


def project_name(project: str) -> str:
    """The PEP 503 form of a project path segment; NotFound if no project can have that name.

    Only a name that would be redirected is validated (the hot path stays cheap): a hostile
    segment (`%0d%0aSet-Cookie:...`, markup) gets a 404, never a redirect that echoes it
    (the CRLF injection of pypiserver/pypiserver#237). A normalized unknown name is a plain
    404 further on.
    """
    name = canonicalize_name(project)
    if name != project:
        try:
            validate_project_name(project)
        except InvalidInput:
            raise NotFound("No project can have that name.") from None
    return name


def media_of(request: Request) -> str:
    """The negotiated media type (PEP 691)."""
    return negotiate(request.headers.get("accept"), request.query_params.get("format"))


async def pypi_json_response(
    request: Request,
    repo: RepositoryView,
    project: str,
    version: str | None,
    document: Callable[[str], Awaitable[bytes]],
) -> Response:
    """A PyPI JSON API answer for `project` (and `version`) of `repo`: a relative 301 to the
    normalized name when the path uses another spelling, else `document(name)` as JSON."""
    name = project_name(project)
    if name != project:
        # Relative, so the prefix the client used is kept; one more level up when the
        # request ended in a slash (`.../json/` is a directory to URL resolution).
        slash = request.url.path.endswith("/")
        up = "../" * ((2 if version else 1) + slash)
        tail = (f"{version}/json" if version else "json") + ("/" if slash else "")
        return RedirectResponse(f"{up}{name}/{tail}", status_code=301)
    body = await document(name)
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": cache_control(request, repo), "Vary": "Authorization"},
    )
