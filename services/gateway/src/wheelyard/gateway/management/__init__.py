"""The management API (OpenAPI at /docs): sign-in, users, repositories, permissions, tokens,
audit. Everything here runs in the gateway, which authenticated the caller already.

Rules: only administrators manage users and create or delete repositories; a repository's
admins (and global admins) change it and its permissions; everyone signed in manages their own
tokens, but not with a token (a read-only token must not mint itself a write one); listings
never include a password hash, a token secret or its hash. The storage report is for
administrators only.
"""

from __future__ import annotations

from fastapi import APIRouter

from wheelyard.gateway.management import (
    audit,
    permissions,
    policy,
    repositories,
    signin,
    storage,
    tokens,
    users,
)
from wheelyard.gateway.management.schemas import ERRORS

router = APIRouter(prefix="/api/v1", responses=ERRORS)
for _module in (signin, users, repositories, policy, permissions, tokens, audit, storage):
    router.include_router(_module.router)
