"""The gateway-to-service token: round trip, reuse, and every forgery refused."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wheelyard.shared.auth.internal_jwt import (
    AUDIENCE,
    ISSUER,
    PRIVATE_KEY_FILE,
    Minter,
    Verifier,
    generate_key_files,
)
from wheelyard.shared.auth.principal import ANONYMOUS, Principal
from wheelyard.shared.errors import Unauthenticated

ALICE = Principal(
    username="alice",
    user_id=2,
    permissions=(("default/priv", "write"),),
    token_id=5,
    token_scope="read",
    token_repositories=frozenset({"default/priv"}),
)


def test_round_trip_keeps_scope_and_permissions(tmp_path: Path) -> None:
    keys = generate_key_files(tmp_path)
    assert (tmp_path / PRIVATE_KEY_FILE).stat().st_mode & 0o777 == 0o600
    minter, verifier = Minter(keys), Verifier(keys)
    assert verifier.principal(minter.token_for(ALICE)) == ALICE
    assert verifier.principal(minter.token_for(ANONYMOUS)) == ANONYMOUS
    assert minter.token_for(ALICE) == minter.token_for(ALICE)  # reused, not re-signed
    again = generate_key_files(tmp_path)  # loads the same files
    assert again.public.public_bytes_raw() == keys.public.public_bytes_raw()


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "admin",
        "adm": True,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
    }


def test_forgeries_are_refused(tmp_path: Path) -> None:
    keys = generate_key_files(tmp_path)
    verifier = Verifier(keys)
    public_pem = keys.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = Minter(keys).token_for(ALICE)
    header, _payload, signature = good.split(".")
    tampered = header + "." + _b64(b'{"sub":"admin","adm":true}') + "." + signature
    forged = [
        None,
        "",
        "garbage",
        jwt.encode(_claims(), key=None, algorithm="none"),
        # HS256 with the public key as the secret: the classic algorithm confusion.
        _hs256(_claims(), public_pem),
        jwt.encode(_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        tampered,
        jwt.encode(_claims() | {"exp": int(time.time()) - 10}, keys.private, algorithm="EdDSA"),
        jwt.encode(_claims() | {"aud": "someone-else"}, keys.private, algorithm="EdDSA"),
        jwt.encode(_claims() | {"iss": "someone-else"}, keys.private, algorithm="EdDSA"),
    ]
    for token in forged:
        with pytest.raises(Unauthenticated):
            verifier.principal(token)


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def _hs256(claims: dict[str, object], secret: bytes) -> str:
    # PyJWT refuses to use a PEM as an HMAC secret, so build the token by hand.
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return jwt.utils.base64url_encode(data).decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"
