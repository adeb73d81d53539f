"""Conditional requests: strong ETags for bodies, and `If-None-Match` evaluation (RFC 9110)."""

from __future__ import annotations

import hashlib
import re


def etag_for(body: bytes) -> str:
    """A strong, quoted ETag for `body`: 128-bit BLAKE2b of the bytes, hex.

    Same bytes give the same tag in every process, so split-mode replicas agree.
    """
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')


def if_none_match_matches(header: str | None, etag: str) -> bool:
    """True when an `If-None-Match` header matches `etag`, i.e. a 304 may be sent.

    Uses the weak comparison RFC 9110 prescribes for If-None-Match: a `W/` prefix on either
    side is ignored. Handles comma-separated lists and `*`. None or an empty header never
    matches.
    """
    if not header:
        return False
    header = header.strip()
    if header == "*":
        return True
    opaque = etag[2:] if etag.startswith("W/") else etag
    return any(match.group(1) == opaque for match in _ENTITY_TAG.finditer(header))
