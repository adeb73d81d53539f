"""What happens when a repository's supply-chain rules refuse a download: it is counted
(`wheelyard_policy_refusals`), written to the audit log (at most `AUDIT_PER_MINUTE` events per
repository per minute, the rest counted into the next event's `suppressed`), and answered 403
with a problem detail naming the rule and, for a withheld file, when it becomes available.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from wheelyard.shared.backends import Backends
from wheelyard.shared.db.engine import begin_write
from wheelyard.shared.domain import accounts
from wheelyard.shared.domain.hosted import StoredFile
from wheelyard.shared.domain.policy import (
    Chain,
    Decision,
    decide,
    for_download,
    iso,
    quarantined,
)
from wheelyard.shared.errors import Refused
from wheelyard.shared.metrics import POLICY_REFUSALS

log = logging.getLogger(__name__)

ACTION = "policy.refused"
#: Refusals written to the audit log per repository per minute (a client retrying in a loop
#: must not flood it); the others are counted.
AUDIT_PER_MINUTE = 30
WINDOW = 60.0


def file_decision(
    chain: Chain,
    *,
    name: str,
    version: str,
    upload_time: datetime | None,
    status: str | None,
    now: datetime,
    origin: str = "",
) -> Decision:
    """The decision for one file: refused when its project is quarantined (PEP 792), else what
    the chain of rules says."""
    if status == "quarantined":
        return quarantined(origin)
    return decide(chain, name, version, upload_time, now)


def stored_file_decision(chain: Chain, stored: StoredFile) -> Decision:
    """`file_decision` for a hosted file as its record holds it, now."""
    return file_decision(
        chain,
        name=stored.project,
        version=stored.version,
        upload_time=stored.upload_time,
        status=stored.status,
        now=datetime.now(UTC),
    )


def refusal(decision: Decision, *, repository: str, filename: str) -> Refused:
    """The 403 for a refused `filename` of `repository`: the detail names the rule and, for a
    withheld file, when it becomes available (also as problem members `rule`, `available_at`)."""
    extensions = {"rule": decision.rule}
    if decision.available_at is not None:
        extensions["available_at"] = iso(decision.available_at)
    message = f"'{filename}' in '{repository}' is {decision.reason()}."
    return Refused(message, extensions)


async def enforce(
    decision: Decision,
    backends: Backends,
    *,
    repository: str,
    project: str,
    filename: str,
    actor: str | None,
    address: str | None,
) -> None:
    """Nothing when `decision` serves `filename` (`policy.for_download`: the metadata of a
    file listed as yanked is served); otherwise count and audit the refusal and raise its
    `Refused`."""
    decision = for_download(decision, filename)
    if decision.served:
        return
    POLICY_REFUSALS.labels(decision.kind).inc()
    await _audit(backends, decision, repository, project, filename, actor, address)
    raise refusal(decision, repository=repository, filename=filename)


async def _audit(
    backends: Backends,
    decision: Decision,
    repository: str,
    project: str,
    filename: str,
    actor: str | None,
    address: str | None,
) -> None:
    cache = backends.cache
    try:
        count = await cache.incr(f"auditlimit:policy:{repository}", ttl=WINDOW)
        suppressed_key = f"auditlimit:policy-suppressed:{repository}"
        if count > AUDIT_PER_MINUTE:
            await cache.incr(suppressed_key, ttl=3600.0)
            return
        detail: dict[str, object] = {
            "project": project,
            "filename": filename,
            "rule": decision.rule,
        }
        if decision.available_at is not None:
            detail["available_at"] = iso(decision.available_at)
        suppressed = await cache.get(suppressed_key)
        if suppressed is not None:
            await cache.delete(suppressed_key)
            detail["suppressed"] = int(suppressed)
        async with backends.sessions() as session:
            await begin_write(session)
            accounts.record(
                session,
                actor=actor,
                action=ACTION,
                target=repository,
                source_ip=address,
                detail=detail,
            )
            await session.commit()
    except Exception as exc:  # the audit must never change the answer to the client
        log.warning("could not audit a policy refusal: %s", exc.__class__.__name__)
