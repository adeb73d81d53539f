"""Parsing credentials out of HTTP headers (verification lives in `authenticator`)."""

from __future__ import annotations

import base64
import binascii

from wheelyard.shared.errors import Unauthenticated


def parse_basic(header: str) -> tuple[str, str]:
    """(username, password) from an `Authorization: Basic ...` value; raises Unauthenticated."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthenticated("Unsupported authorization scheme; use HTTP Basic.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("Malformed Basic credentials.") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated("Malformed Basic credentials.")
    return username, password
