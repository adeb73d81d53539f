"""The gateway-to-service token: a short-lived EdDSA (Ed25519) JWT carrying the caller.

The gateway authenticates every request and forwards, in the `X-Wheelyard-Internal` header, a
token signed with its private key that says who the caller is and what they may do (their
per-repository permissions and, for API tokens, the token's scope and repositories). Services
verify it with the public key and refuse requests without a valid one; they never trust any
other identity header. Because the scope travels inside the signed token, it survives the
exchange (Gitea CVE-2025-68944 was exactly a scope dropped during such a re-mint).

Verification pins the algorithm (EdDSA only), the issuer and the audience, and requires `exp`:
`none`, HS256 signed with the public key, tampered or expired tokens are all refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.config import Settings
from wheelyard.shared.errors import ConfigurationError, Unauthenticated
from wheelyard.shared.memo import ByteLRU
from wheelyard.shared.metrics import AUTH_FAILURES

HEADER = "x-wheelyard-internal"
ISSUER = "wheelyard-gateway"
AUDIENCE = "wheelyard-services"
ALGORITHM = "EdDSA"
LIFETIME = 120  # seconds; a forwarded request is handled well within this
REUSE_FOR = 60  # the gateway reuses a minted token for the same principal this long
#: Minted (gateway) and verified (service) tokens remembered, each at most this many bytes.
REMEMBERED_BYTES = 8 * 1024 * 1024

PRIVATE_KEY_FILE = "internal-jwt-private.pem"
PUBLIC_KEY_FILE = "internal-jwt-public.pem"


@dataclass(frozen=True)
class KeyPair:
    """The signing key (gateway only; None in a service) and the verification key."""

    private: Ed25519PrivateKey | None
    public: Ed25519PublicKey


def new_key_pems() -> tuple[bytes, bytes]:
    """A fresh Ed25519 pair as PEM: (private key, PKCS#8 unencrypted; public key, SPKI)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private, public_pem_of(private)


def public_pem_of(private_pem: bytes) -> bytes:
    """The SPKI PEM of the public half of an Ed25519 private key given as PEM."""
    private = load_key_pair(private_pem, None).private
    assert private is not None  # load_key_pair returns the private key it was given
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_key_files(directory: Path) -> KeyPair:
    """Load the key pair from `directory`, creating it (private key mode 0600) on first use."""
    private_path = directory / PRIVATE_KEY_FILE
    public_path = directory / PUBLIC_KEY_FILE
    if not private_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    try:
        private_pem, public_pem = private_path.read_bytes(), public_path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{PRIVATE_SETTING}: unset, and the key pair in {directory} cannot be read: {exc}"
        ) from exc
    return load_key_pair(private_pem, public_pem)


PRIVATE_SETTING = "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY"
PUBLIC_SETTING = "WHEELYARD_INTERNAL_JWT_PUBLIC_KEY"


def load_key_pair(private_pem: bytes | None, public_pem: bytes | None) -> KeyPair:
    """A KeyPair from PEM bytes; the public key is derived from the private one if absent.
    A key that does not parse, is not Ed25519, or a pair whose halves do not match raises
    ConfigurationError naming the setting."""
    private = None
    if private_pem:
        try:
            loaded = serialization.load_pem_private_key(private_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{PRIVATE_SETTING}: not a readable PEM key ({exc})") from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigurationError(f"{PRIVATE_SETTING}: must be an Ed25519 key")
        private = loaded
    if public_pem:
        try:
            public = serialization.load_pem_public_key(public_pem)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{PUBLIC_SETTING}: not a readable PEM key ({exc})") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise ConfigurationError(f"{PUBLIC_SETTING}: must be an Ed25519 key")
        if private is not None and _raw(private.public_key()) != _raw(public):
            raise ConfigurationError(
                f"{PUBLIC_SETTING}: does not match {PRIVATE_SETTING} (the services would refuse "
                "every token the gateway signs)"
            )
    elif private is not None:
        public = private.public_key()
    else:
        raise ConfigurationError(f"{PUBLIC_SETTING}: a service needs the gateway's public key")
    return KeyPair(private, public)


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _pem(value: str | None, key: str) -> bytes | None:
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{key}: cannot read {value}: {exc}") from exc


def keys_from_settings(settings: Settings, *, signing: bool) -> KeyPair:
    """The key pair for this process: the gateway (`signing`) needs the private key, a service
    only the public one. Configured keys win. With neither configured, the gateway uses (and on
    first start creates) the pair in the data dir: embedded mode. A gateway given only the
    public key refuses to start: inventing a pair of its own would make every forwarded
    request fail at the services while the gateway looked healthy."""
    private = _pem(settings.internal_jwt_private_key, PRIVATE_SETTING)
    public = _pem(settings.internal_jwt_public_key, PUBLIC_SETTING)
    if signing:
        if private is None and public is not None:
            raise ConfigurationError(
                f"{PRIVATE_SETTING}: not set, but {PUBLIC_SETTING} is: the gateway signs the "
                "internal tokens with the private key of that pair (set both, or neither for "
                "the embedded server)"
            )
        if private is None:
            return generate_key_files(settings.data_dir)
        return load_key_pair(private, public)
    if private or public:
        return load_key_pair(private, public)
    public_file = settings.data_dir / PUBLIC_KEY_FILE
    if public_file.exists():
        return load_key_pair(None, public_file.read_bytes())
    raise ConfigurationError(
        f"{PUBLIC_SETTING}: a service needs the gateway's public key "
        "(or run `wheelyard serve` for the embedded server)"
    )


def claims_of(principal: Principal) -> dict[str, Any]:
    """The principal as JWT claims (short names keep the header small)."""
    claims: dict[str, Any] = {"sub": principal.username or "", "adm": principal.is_admin}
    if principal.user_id is not None:
        claims["uid"] = principal.user_id
    if principal.permissions:
        claims["perm"] = dict(principal.permissions)
    if principal.token_id is not None:
        claims["tok"] = {
            "id": principal.token_id,
            "scope": principal.token_scope,
            "repos": sorted(principal.token_repositories or ()),
        }
    return claims


def principal_of(claims: dict[str, Any]) -> Principal:
    """The principal described by verified claims."""
    token = claims.get("tok")
    return Principal(
        username=claims.get("sub") or None,
        user_id=claims.get("uid"),
        is_admin=bool(claims.get("adm")),
        permissions=tuple(sorted((claims.get("perm") or {}).items())),
        token_id=token["id"] if token else None,
        token_scope=token["scope"] if token else None,
        token_repositories=frozenset(token["repos"]) if token else None,
    )


class Minter:
    """Signs internal tokens (gateway side), reusing one per principal for REUSE_FOR seconds.

    Reuse is safe because the gateway re-authenticates the credential on every request before
    it looks a token up here; what is reused is only the signature work.
    """

    def __init__(self, keys: KeyPair, max_bytes: int = REMEMBERED_BYTES) -> None:
        if keys.private is None:
            raise ConfigurationError(f"{PRIVATE_SETTING}: the gateway must sign")
        self._key = keys.private
        # A principal and its token grow with the caller's permissions: bounded in bytes.
        self._minted: ByteLRU[Principal, tuple[float, str]] = ByteLRU(max_bytes)

    def token_for(self, principal: Principal) -> str:
        """A valid internal token for `principal`."""
        now = time.time()
        hit = self._minted.get(principal)
        if hit is not None and hit[0] > now:
            return hit[1]
        claims = claims_of(principal) | {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(now),
            "exp": int(now) + LIFETIME,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        self._minted.put(principal, (now + REUSE_FOR, token))
        return token


class Verifier:
    """Verifies internal tokens (service side), remembering verified ones until they expire."""

    def __init__(self, keys: KeyPair, max_bytes: int = REMEMBERED_BYTES) -> None:
        self._key = keys.public
        self._verified: ByteLRU[str, tuple[float, Principal]] = ByteLRU(max_bytes)

    def principal(self, token: str | None) -> Principal:
        """The principal in `token`; raises Unauthenticated when missing or invalid."""
        if not token:
            AUTH_FAILURES.labels("internal").inc()
            raise Unauthenticated("Requests must come through the Wheelyard gateway.")
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            AUTH_FAILURES.labels("internal").inc()
            raise Unauthenticated("Invalid internal credentials.") from exc
        principal = principal_of(claims)
        self._verified.put(token, (float(claims["exp"]), principal))
        return principal
