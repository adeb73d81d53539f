"""API tokens: `wy_<public id>_<secret>`, shown once, stored as a hash of the secret.

The public id is not secret: it finds the row without comparing secrets, and the secret's
sha256 is then compared in constant time (keygen-sh/keygen-api #406). An unknown id is compared
against a dummy digest so that timing does not reveal which ids exist. The secret has 256 bits
of entropy, so a fast hash is enough (no argon2 needed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "wy"
_TOKEN = re.compile(r"^wy_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_DIGEST = hashlib.sha256(b"wheelyard: no such token").hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A freshly generated token: `value` is shown to the user once; store the others."""

    value: str
    public_id: str
    secret_hash: str


def generate_token() -> NewToken:
    """A new random token."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    public_id = "".join(secrets.choice(alphabet) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return NewToken(f"{PREFIX}_{public_id}_{secret}", public_id, hash_secret(secret))


def hash_secret(secret: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(value: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(value)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check of `secret` against a stored hash (a dummy one when None)."""
    return hmac.compare_digest(hash_secret(secret), stored_hash or _DUMMY_DIGEST) and (
        stored_hash is not None
    )


def looks_like_token(value: str) -> bool:
    """True when `value` has the shape of an API token (vs. a password or a JWT)."""
    return _TOKEN.match(value) is not None
