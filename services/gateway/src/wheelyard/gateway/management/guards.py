"""What every management route checks first: who is calling (signed in, administrator), from
where, and the audit record of what they did."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.domain import accounts
from wheelyard.shared.errors import Forbidden, Unauthenticated
from wheelyard.shared.web.deps import SessionDep


def signed_in(request: Request) -> Principal:
    """The caller, who must be signed in (401 otherwise)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or not principal.authenticated:
        raise Unauthenticated("Sign in to use the management API.")
    return principal


def administrator(request: Request) -> Principal:
    """The caller, who must be an administrator signed in without an API token (403)."""
    return require_administrator(signed_in(request))


def require_administrator(principal: Principal) -> Principal:
    """`principal`, who must be an administrator signed in without an API token (403)."""
    if not principal.is_admin or principal.token_scope is not None:
        raise Forbidden(
            "Only administrators (signed in with a password or access token) may do this."
        )
    return principal


def client_address(request: Request) -> str | None:
    """The address of the client, as the server saw it."""
    return request.client.host if request.client else None


def audit(
    request: Request,
    session: SessionDep,
    actor: str | None,
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record who did what, from the request's client address, in the current transaction."""
    accounts.record(
        session,
        actor=actor,
        action=action,
        target=target,
        source_ip=client_address(request),
        detail=detail,
    )
