"""PEP 691 content negotiation: which media type a simple page is served as.

Installers send the same `Accept` header on every request, so results are memoized per header.
"""

from __future__ import annotations

import re
from functools import lru_cache

from wheelyard.shared.packaging.simple.model import HTML_V1, JSON_V1, TEXT_HTML

_CONTENT_TYPES = {
    TEXT_HTML: "text/html; charset=utf-8",
    HTML_V1: HTML_V1,
    JSON_V1: JSON_V1,
}

_OFFERS = (JSON_V1, HTML_V1, TEXT_HTML)
_ALIASES = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: TEXT_HTML,
    # The meta-version asks for the latest we have; we answer with the concrete type (PEP 691).
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Ties among explicitly named types: most expressive first (PEP 691 "Recommendations").
_NAMED_PREFERENCE = (JSON_V1, HTML_V1, TEXT_HTML)
# Ties won only through wildcards: HTML first, as PyPI, hatch, browsers and curl expect.
_WILDCARD_PREFERENCE = (TEXT_HTML, HTML_V1, JSON_V1)
# RFC 9110 qvalue: 0..1 with at most three decimals.
_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
_MAX_CACHED_ACCEPT = 1024

# (media type, quality) per range; specificity is derived per offer.
_Range = tuple[str, float]


def _parse_accept(header: str) -> list[_Range]:
    ranges: list[_Range] = []
    for element in header.split(","):
        media, *params = element.split(";")
        media = media.strip().lower()
        if media == "*":
            media = "*/*"  # Old Java clients send a bare `*`.
        if media.count("/") != 1:
            continue
        quality = 1.0
        valid = True
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                if _QVALUE.fullmatch(value):
                    quality = float(value)
                else:
                    valid = False  # An unparseable q drops that range, not the header.
                break  # Parameters after q are accept-extensions; they do not matter here.
        if valid:
            ranges.append((media, quality))
    return ranges


def _select(header: str) -> str | None:
    """The offer `header` prefers, or None when it accepts none of them."""
    ranges = _parse_accept(header)
    scored: list[tuple[str, float, bool]] = []
    for offer in _OFFERS:
        offer_type = offer.split("/", 1)[0]
        best_specificity = 0
        best_quality = 0.0
        for media, quality in ranges:
            if _ALIASES.get(media) == offer:
                specificity = 3
            elif media == f"{offer_type}/*":
                specificity = 2
            elif media == "*/*":
                specificity = 1
            else:
                continue
            # The most specific matching range decides (RFC 9110 §12.5.1); equally specific ranges
            # (e.g. v1+json and latest+json) take the higher q.
            if specificity > best_specificity or (
                specificity == best_specificity and quality > best_quality
            ):
                best_specificity, best_quality = specificity, quality
        if best_specificity and best_quality > 0:
            scored.append((offer, best_quality, best_specificity == 3))
    if not scored:
        return None
    top = max(quality for _, quality, _ in scored)
    named = {offer for offer, quality, explicit in scored if quality == top and explicit}
    if named:
        return next(offer for offer in _NAMED_PREFERENCE if offer in named)
    tied = {offer for offer, quality, _ in scored if quality == top}
    return next(offer for offer in _WILDCARD_PREFERENCE if offer in tied)


def _negotiate(accept: str | None, format_param: str | None) -> str:
    if format_param:
        # `?format=` takes precedence over Accept (PEP 691, "URL Parameter"); one we cannot
        # serve is ignored.
        chosen = _select(format_param)
        if chosen is not None:
            return chosen
    if accept is None or not accept.strip():
        # No header counts as `*/*` (PEP 691), which PyPI answers with HTML (docs/standards.md §5).
        return TEXT_HTML
    # Nothing acceptable (e.g. only `application/json`): PyPI serves its HTML default rather
    # than 406, and so do we (PEP 691 allows either; docs/standards.md §5).
    return _select(accept) or TEXT_HTML


_negotiate_cached = lru_cache(maxsize=512)(_negotiate)


def negotiate(accept: str | None, format_param: str | None = None) -> str:
    """Return the media type to serve: `JSON_V1`, `HTML_V1` or `TEXT_HTML` (never None).

    Implements docs/standards.md §5: q-values (up to three decimals, q=0 means not
    acceptable), the most specific matching range decides each offer's quality,
    `latest+json`/`latest+html` map to the v1 types; ties among explicitly named types prefer
    JSON > v1+html > text/html, ties reached only through wildcards (or no header) give
    text/html, and a header that accepts nothing we offer gets text/html (PyPI parity, no 406).
    A `format_param` (the `?format=` query value) that names one of our types wins over
    `Accept`. Results are memoized per (accept, format) pair in a bounded LRU.
    """
    if (accept is not None and len(accept) > _MAX_CACHED_ACCEPT) or (
        format_param is not None and len(format_param) > _MAX_CACHED_ACCEPT
    ):
        # Do not let odd, huge headers occupy the cache; they are rare and still answered.
        return _negotiate(accept, format_param)
    return _negotiate_cached(accept, format_param)


def content_type_for(media: str) -> str:
    """The full `Content-Type` value for a media type returned by `negotiate`.

    `text/html; charset=utf-8` for text/html, the v1 types as they are (PEP 691).
    Raises ValueError for any other type: we never send `application/json`
    (docs/standards.md §5).
    """
    try:
        return _CONTENT_TYPES[media]
    except KeyError:
        raise ValueError(f"not a simple-API media type: {media!r}") from None
