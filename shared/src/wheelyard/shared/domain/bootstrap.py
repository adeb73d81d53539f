"""First-start bootstrap: the admin account, the default repositories, declared repositories.

Idempotent: run at every start. Defaults are created only when missing (an operator's later
changes are kept), except that `default/pypi`, while it is still a proxy, follows the
WHEELYARD_PYPI_PROXY* settings (upstream URL, credentials, timeout, TTL) at every start;
repositories declared in the TOML file are created or updated to match.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.passwords import generate_password, hash_password
from wheelyard.shared.config import RepositoryConfig, Settings
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.db.models import User
from wheelyard.shared.domain.policy import SETTING_KEYS
from wheelyard.shared.domain.repositories import RepositoryView, apply_repository
from wheelyard.shared.errors import ConfigurationError, InvalidInput

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
#: The default proxy repository configured by WHEELYARD_PYPI_PROXY*.
PYPI_REPOSITORY = "pypi"


def default_repositories(settings: Settings) -> list[RepositoryConfig]:
    """`default/local` (hosted), `default/pypi` (proxy), `default/all` (group of both)."""
    return [
        RepositoryConfig(name="local", type="hosted", visibility="public"),
        RepositoryConfig(
            name="pypi",
            type="proxy",
            visibility="public",
            upstreams=[settings.pypi_upstream],
            ttl=settings.pypi_proxy_ttl,
        ),
        RepositoryConfig(name="all", type="group", visibility="public", members=["local", "pypi"]),
    ]


async def bootstrap(session: AsyncSession, settings: Settings) -> str | None:
    """Create what a fresh registry needs. Returns a newly generated admin password (to print
    once), or None when the password came from configuration or the admin already existed."""
    await begin_write(session)
    generated = await _ensure_admin(session, settings)
    for spec in default_repositories(settings):
        view = await apply_repository(session, spec, create_only=True)
        if spec.name == PYPI_REPOSITORY and view.type == "proxy" and _differs(view, spec):
            # The environment is where operators point the default proxy (an internal mirror,
            # credentials, a test upstream): it must win over what an earlier start stored.
            # Visibility, type, the supply-chain rules and retention stay as the operator left
            # them.
            kept = {k: view.settings[k] for k in SETTING_KEYS if k in view.settings}
            spec = spec.model_copy(
                update={
                    "visibility": view.visibility,
                    **kept,
                    "cache_max_bytes": view.settings.get("cache_max_bytes"),
                    "cache_max_idle": view.settings.get("cache_max_idle"),
                }
            )
            await apply_repository(session, spec)
    for spec in settings.repositories:
        try:
            await apply_repository(session, spec)
        except InvalidInput as exc:
            # A declared repository's settings are the operator's file: say which one.
            raise ConfigurationError(f"WHEELYARD_CONFIG: {exc.message}") from exc
    await session.commit()
    return generated


def _differs(view: RepositoryView, spec: RepositoryConfig) -> bool:
    return tuple(view.upstreams) != tuple(spec.upstreams) or view.ttl != spec.ttl


async def _ensure_admin(session: AsyncSession, settings: Settings) -> str | None:
    existing = (await session.exec(select(User).where(User.username == ADMIN_USERNAME))).first()
    if existing is not None:
        return None
    password = settings.admin_password
    generated = None
    if not password:
        password = generated = generate_password()
        _write_secret(settings.data_dir / "admin-password", password)
    session.add(User(username=ADMIN_USERNAME, password_hash=hash_password(password), is_admin=True))
    await session.flush()
    return generated


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start: never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)
