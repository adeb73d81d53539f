"""Sign-in: a username and password exchanged for a short-lived access JWT."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from wheelyard.gateway.management.guards import audit, client_address
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.web.deps import SessionDep

router = APIRouter(tags=["auth"])


class TokenResponse(BaseModel):
    """An access token for the `Authorization: Bearer` header."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (a token type, not a secret)
    expires_in: int


class Credentials(BaseModel):
    """A username and its password."""

    username: str
    password: str


_CREDENTIALS = Credentials.model_json_schema()
_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _CREDENTIALS},
        "application/x-www-form-urlencoded": {"schema": _CREDENTIALS},
    },
}


@router.post("/auth/token", response_model=TokenResponse, openapi_extra={"requestBody": _BODY})
async def sign_in(request: Request, session: SessionDep) -> TokenResponse:
    """Exchange a username and password (JSON, or the OAuth2 password form) for a short-lived
    JWT. Attempts are throttled per account and address (429 with Retry-After while waiting)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError as exc:  # not JSON, or not UTF-8
            raise InvalidInput("The body is not valid JSON.") from exc
        if not isinstance(body, dict):
            raise InvalidInput("Send a JSON object with 'username' and 'password'.")
    else:
        body = dict(await request.form(max_files=0, max_fields=10))
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidInput("Both 'username' and 'password' are required.")
    authenticator: Authenticator = request.app.state.authenticator
    # Throttled, and audited when refused, by the authenticator.
    principal = await authenticator.by_password(username, password, client_address(request))
    record = await authenticator.user_record(username)
    assert record is not None
    token, lifetime = authenticator.issue_access_token(principal, record.password_changed)
    await begin_write(session)
    audit(request, session, username, "auth.login")
    await session.commit()
    return TokenResponse(access_token=token, expires_in=lifetime)
