"""The web interface from tests without a browser: an httpx client that keeps cookies, reads
the CSRF token of a page's forms and posts forms the way a browser on the same site would."""

from __future__ import annotations

import re
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class WebClient:
    """A browser-like client of one server: cookies kept, redirects not followed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(
            base_url=url,
            follow_redirects=False,
            timeout=30,
            headers={"Accept": BROWSER_ACCEPT},
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def csrf(self, path: str) -> str:
        """The CSRF token in the forms of the page at `path`."""
        response = self.get(path)
        found = _CSRF.search(response.text)
        assert found, f"no form with a CSRF token on {path}: {response.status_code}"
        return found.group(1)

    def post(
        self,
        path: str,
        data: dict[str, Any] | list[tuple[str, str]],
        *,
        token: str | None = None,
        origin: str | None = "same",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Post a form (with `token` as its CSRF field when given), from `origin` (`same`
        for this server's own origin, None for no Origin header)."""
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        if token is not None:
            pairs.append(("csrf_token", token))
        fields: dict[str, list[str]] = {}
        for key, value in pairs:
            fields.setdefault(key, []).append(value)
        sent = dict(headers or {})
        if origin is not None:
            sent["Origin"] = self.url if origin == "same" else origin
        return self.http.post(path, data=fields, headers=sent)

    def sign_in(self, username: str, password: str) -> httpx.Response:
        """Sign in through the form; asserts it worked."""
        token = self.csrf("/ui/signin")
        response = self.post(
            "/ui/signin", {"username": username, "password": password}, token=token
        )
        assert response.status_code == 303, response.text
        return response

    def page_token(self, path: str = "/ui/tokens") -> str:
        """The signed-in session's CSRF token (from a page with forms)."""
        return self.csrf(path)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WebClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
