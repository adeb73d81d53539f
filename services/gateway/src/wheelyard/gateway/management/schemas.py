"""What the management API answers, declared for its OpenAPI schema: the bodies of successful
responses and the RFC 9457 problem every refusal carries, so that clients (and the Schemathesis
run in tests/integration/test_management_fuzz.py) can hold each response to its schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """An RFC 9457 problem: `detail` says in words what went wrong. (Errors raised by the
    framework itself, such as a body that is not JSON, carry `detail` only.)"""

    type: str = "about:blank"
    title: str | None = None
    status: int | None = None
    detail: str


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
    }


#: The refusals any management route may answer with.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("The request is malformed or breaks a rule; `detail` says which."),
    401: _problem("No credentials, or credentials that do not verify."),
    403: _problem("Signed in, but not allowed to do this."),
    404: _problem("No such thing (or one the caller may not know of)."),
    409: _problem("The request contradicts what is stored."),
    413: _problem("The request body is too large."),
    429: _problem("Too many failed sign-in attempts; wait `Retry-After` seconds."),
    503: _problem("A backend (database, cache) is unavailable; retry after `Retry-After`."),
}


class UserOut(BaseModel):
    """A user, as listings show one (never a password or its hash)."""

    username: str
    is_admin: bool
    is_active: bool
    created_at: str


class UpstreamOut(BaseModel):
    """An upstream of a proxy repository, without its password (and without credentials written
    into its URL); `username` only for the repository's admins."""

    url: str
    username: str | None
    timeout: float
    has_password: bool
    ca_bundle: str | None = None


class RepositoryOut(BaseModel):
    """A repository's settings, as the caller may see them."""

    storage: str
    name: str
    type: Literal["hosted", "proxy", "group"]
    visibility: Literal["public", "private"]
    ttl: int | None
    members: list[str] = Field(description="the members the caller may read, in order")
    upstreams: list[UpstreamOut]
    allow_upstream: list[str]
    min_release_age: str | int | None = None
    release_age_exempt: list[str] = Field(default_factory=list)
    blocked: list[str] = Field(default_factory=list)
    allowed: list[str] = Field(default_factory=list)
    withheld_files: Literal["yanked", "hidden"] = "yanked"
    cache_max_bytes: int | None = Field(
        default=None, description="proxy only: retention's size limit of the cache, in bytes"
    )
    cache_max_idle: str | None = Field(
        default=None, description="proxy only: cached files not downloaded for this long go"
    )
    url: str


class PermissionOut(BaseModel):
    """A user's level on a repository."""

    repository: str
    username: str
    level: Literal["read", "write", "admin"]


class Grant(BaseModel):
    """Who has which level on a repository."""

    username: str
    level: Literal["read", "write", "admin"]


class TokenOut(BaseModel):
    """An API token as listings show it: never the secret nor its hash."""

    id: int
    name: str
    owner: str | None
    scope: Literal["read", "write"]
    repositories: list[str]
    prefix: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class CreatedTokenOut(TokenOut):
    """A new API token, with its value shown this once."""

    token: str


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    at: str
    actor: str | None
    action: str
    target: str | None
    source_ip: str | None
    detail: dict[str, Any]
