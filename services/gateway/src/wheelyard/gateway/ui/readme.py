"""A project's README (its core metadata `Description`) as safe HTML.

Rendered by `readme_renderer`, PyPI's own renderer, whose sanitizer (nh3) keeps only harmless
tags and attributes: no script, no event handler, no `javascript:` link, no style, no frame.
`Description-Content-Type` picks the format (PEP 566): `text/markdown` (GFM unless the
`variant` parameter says CommonMark), `text/x-rst`, `text/plain`; without one, reStructuredText
is tried and plain text used when it does not parse, as on PyPI.

One more pass (nh3 again, with the same allowed tags) drops the source of every image that
is not on this server: a README must not
make a reader's browser contact another host (a tracking pixel, or a registry that runs
offline), so such images show their alternative text. The pages' Content-Security-Policy
enforces the same in the browser. The pass also drops `lang` attributes of code blocks and
the empty self-links of headings, which mislead assistive technology.

Rendering can be slow (docutils), so it runs in a worker thread and its result is kept in the
cache under a digest of the input.
"""

from __future__ import annotations

import hashlib
import re
from email.message import Message
from importlib.metadata import version
from urllib.parse import urlsplit

import anyio
from markupsafe import Markup

from wheelyard.shared.cache import Cache

#: How long a rendered README is kept (the key changes whenever the input does).
RENDERED_TTL = 24 * 3600.0
_RENDERER = f"readme_renderer {version('readme-renderer')}, wheelyard pass 1"


# cmark-gfm gives every heading an empty self-link: nothing to read for a screen reader.
_EMPTY_ANCHOR = re.compile(r'<a href="#[^"<>]*"[^<>]*></a>')


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    if element == "img" and attribute in ("src", "srcset"):
        parts = urlsplit(value.strip())
        if parts.scheme or parts.netloc or value.strip().startswith("//"):
            return None  # another host: see the module docstring
    if attribute == "lang" and element != "html":
        # Code blocks say their programming language there (`<pre lang="python">`), which is
        # not a human language and misleads assistive technology.
        return None
    return value


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    message = Message()
    message["content-type"] = value
    params = {k.lower(): v for k, v in (message.get_params() or [])[1:]}
    return message.get_content_type().lower(), params


def render_html(description: str, content_type: str | None) -> str:
    """The sanitized HTML of a README (see the module docstring)."""
    # Imported on the first README shown, not at start: docutils, the markdown engine and the
    # sanitizer are several megabytes that a registry serving only installers never needs.
    import nh3
    import readme_renderer.markdown
    import readme_renderer.rst
    import readme_renderer.txt
    from readme_renderer.clean import ALLOWED_ATTRIBUTES, ALLOWED_TAGS

    kind, params = _content_type(content_type)
    rendered: str | None
    if kind == "text/markdown":
        variant = params.get("variant", "GFM")
        rendered = readme_renderer.markdown.render(
            description, variant=variant if variant in ("GFM", "CommonMark") else "GFM"
        )
    elif kind == "text/plain":
        rendered = readme_renderer.txt.render(description)
    else:
        rendered = readme_renderer.rst.render(description)
        if rendered is None:  # not valid reStructuredText: shown as the text it is
            rendered = readme_renderer.txt.render(description)
    cleaned = nh3.clean(
        rendered or "",
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        link_rel="nofollow noopener noreferrer",
        url_schemes={"http", "https", "mailto"},
        attribute_filter=_filter_attribute,
    )
    return _EMPTY_ANCHOR.sub("", cleaned)


async def render_readme(cache: Cache, description: str | None, content_type: str | None) -> Markup:
    """The README as markup safe to put in a page (empty when there is none)."""
    if not description or not description.strip():
        return Markup("")
    digest = hashlib.sha256(
        f"{_RENDERER}\0{content_type or ''}\0{description}".encode()
    ).hexdigest()
    key = f"ui:readme:{digest}"
    cached = await cache.get(key)
    if cached is None:
        html = await anyio.to_thread.run_sync(render_html, description, content_type)
        cached = html.encode()
        await cache.set(key, cached, ttl=RENDERED_TTL)
    return Markup(cached.decode())  # noqa: S704  (sanitized by render_html above)
