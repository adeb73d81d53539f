"""SQLModel tables: the source of truth for everything but file bytes.

Unique constraints decide races (one project per repository + name, one file per repository +
filename and one per repository + identity, one release per project + canonical version);
callers catch IntegrityError instead of taking locks. A deleted file keeps its row (with
`deleted_at`) so that neither its filename nor its identity can ever be filled again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None if nullable else ...,
        sa_column_args=[sa.ForeignKey(target, ondelete="CASCADE")],
        nullable=nullable,
        index=index,
    )


class Storage(SQLModel, table=True):
    """A namespace of repositories (the `<storage>` in `/repositories/<storage>/<repo>/`)."""

    __tablename__ = "storages"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    created_at: datetime = _created()


class Repository(SQLModel, table=True):
    """A hosted, proxy or group repository inside a storage.

    Ids are never reused (SQLite AUTOINCREMENT; Postgres sequences never go back): cache keys
    are built from them, and a new repository must never find a deleted one's entries.
    """

    __tablename__ = "repositories"
    __table_args__ = (
        sa.UniqueConstraint("storage_id", "name", name="uq_repository_name"),
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    storage_id: int = _fk("storages.id")
    name: str = Field(max_length=64)
    type: str = Field(max_length=16)  # hosted | proxy | group
    visibility: str = Field(default="public", max_length=16)  # public | private
    ttl: int | None = None  # proxy index freshness in seconds; None = the configured default
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    created_at: datetime = _created()


class Upstream(SQLModel, table=True):
    """One upstream index of a proxy repository; lower `position` is tried first."""

    __tablename__ = "upstreams"
    __table_args__ = (sa.UniqueConstraint("repository_id", "position", name="uq_upstream_pos"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = _fk("repositories.id")
    position: int = 0
    url: str = Field(max_length=2048)
    username: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=1024)
    timeout: float = 30.0
    # PEM certificates trusted for this upstream besides the system's (a TLS-inspecting proxy
    # or a private CA); None = the system trust store and WHEELYARD_PYPI_PROXY_CA_BUNDLE.
    ca_bundle: str | None = Field(default=None, sa_type=sa.Text)


class RepositoryMember(SQLModel, table=True):
    """Membership of a repository in a group; lower `position` is consulted first."""

    __tablename__ = "repository_members"
    group_id: int = Field(
        sa_column_args=[sa.ForeignKey("repositories.id", ondelete="CASCADE")], primary_key=True
    )
    member_id: int = Field(
        sa_column_args=[sa.ForeignKey("repositories.id", ondelete="CASCADE")], primary_key=True
    )
    position: int = 0


class Project(SQLModel, table=True):
    """A project in a hosted repository, looked up by its PEP 503 normalized name."""

    __tablename__ = "projects"
    __table_args__ = (sa.UniqueConstraint("repository_id", "name", name="uq_project_name"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = _fk("repositories.id")
    name: str = Field(max_length=255)  # normalized
    display_name: str = Field(max_length=255)
    status: str = Field(default="active", max_length=16)  # PEP 792
    status_reason: str | None = None
    # Bumped on every change that alters the project's pages: the key of the page cache.
    serial: int = 0
    created_at: datetime = _created()


class Release(SQLModel, table=True):
    """One version of a project, with the core metadata of its first upload and yank state."""

    __tablename__ = "releases"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "canonical_version", name="uq_release_version"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = _fk("projects.id")
    version: str = Field(max_length=255)  # normalized PEP 440 form, as in filenames
    canonical_version: str = Field(max_length=255)  # trailing zeros stripped: 1.0 == 1.0.0
    is_prerelease: bool = False
    summary: str | None = Field(default=None, max_length=512)
    requires_python: str | None = Field(default=None, max_length=255)
    core_metadata: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    yanked: bool = False
    yanked_reason: str | None = None
    created_at: datetime = _created()


class File(SQLModel, table=True):
    """A distribution file. Rows are never reused: a deleted file keeps its filename and its
    identity reserved."""

    __tablename__ = "files"
    __table_args__ = (
        sa.UniqueConstraint("repository_id", "filename", name="uq_file_name"),
        sa.UniqueConstraint("repository_id", "identity", name="uq_file_identity"),
    )
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = _fk("repositories.id")
    project_id: int = _fk("projects.id")
    release_id: int = _fk("releases.id")
    filename: str = Field(max_length=255)
    # What an installer sees, whatever the spelling of the name (`DistFile.identity`):
    # `pkg-1.0-py3-none-any.whl` and `pkg-1.0.0-py3-none-any.whl` share one.
    identity: str = Field(max_length=512)
    packagetype: str = Field(max_length=16)  # bdist_wheel | sdist
    python_version: str = Field(max_length=64)
    sha256: str = Field(max_length=64)
    blake2_256: str = Field(max_length=64)
    md5: str = Field(max_length=32)
    size: int = Field(sa_type=sa.BigInteger)
    upload_time: datetime = _created()
    requires_python: str | None = Field(default=None, max_length=255)
    blob_key: str = Field(max_length=255, index=True)  # garbage collection looks blobs up
    metadata_sha256: str | None = Field(default=None, max_length=64)  # PEP 658 hash
    metadata_blob_key: str | None = Field(default=None, max_length=255, index=True)
    metadata_size: int | None = None
    uploaded_by: str | None = Field(default=None, max_length=150)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    """An account. Passwords are stored as argon2 hashes only."""

    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=150, unique=True)
    password_hash: str = Field(max_length=255)
    is_admin: bool = False
    is_active: bool = True
    created_at: datetime = _created()
    password_changed_at: datetime = _created()


class Permission(SQLModel, table=True):
    """A user's level on one repository: read < write < admin."""

    __tablename__ = "permissions"
    user_id: int = Field(
        sa_column_args=[sa.ForeignKey("users.id", ondelete="CASCADE")], primary_key=True
    )
    repository_id: int = Field(
        sa_column_args=[sa.ForeignKey("repositories.id", ondelete="CASCADE")], primary_key=True
    )
    level: str = Field(max_length=16)


class ApiToken(SQLModel, table=True):
    """A scoped API token. Only a hash of the secret is stored; `public_id` is not secret."""

    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=32, unique=True)
    secret_hash: str = Field(max_length=128)
    name: str = Field(max_length=150)
    user_id: int = _fk("users.id")
    scope: str = Field(max_length=16)  # read | write
    repositories: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()


class AuditEvent(SQLModel, table=True):
    """Who did what, when, from where. Never holds a secret."""

    __tablename__ = "audit_events"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    actor: str | None = Field(default=None, max_length=150)
    action: str = Field(max_length=64)
    target: str | None = Field(default=None, max_length=512)
    source_ip: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class ProxyPage(SQLModel, table=True):
    """The last good upstream page of one project in a proxy repository (or a negative entry).

    The parsed, sanitised page (never upstream markup) is in two parts: `data` holds the head
    (versions, PEP 792 status, serial, which upstream, the digest that identifies this
    version of the page, the file count) and `files` the files, one JSON object per line,
    zlib-compressed (upstream URL, sha256, size, upload time, requires-python, yank state,
    core-metadata hash), so a page of 100,000 files is read as a stream. Kept so pages survive
    restarts and can be served stale while the upstream is down. `missing` marks a recent
    upstream 404 (a negative entry), purged once expired.
    """

    __tablename__ = "proxy_pages"
    __table_args__ = (sa.UniqueConstraint("repository_id", "project", name="uq_proxy_page"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = _fk("repositories.id")
    project: str = Field(max_length=255)  # normalized
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    etag: str | None = Field(default=None, max_length=1024)
    last_modified: str | None = Field(default=None, max_length=128)
    fetched_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    missing: bool = False
    files: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class ProxyFile(SQLModel, table=True):
    """A file a proxy repository fetched from its own upstream and verified (sha256, size).

    The blob store is shared and content-addressed, so a blob's existence says nothing about
    who may read it: a proxy repository serves stored bytes only for files it has a row for.
    `filename` is the name in the download URL (a `.metadata` suffix for PEP 658 metadata).
    `first_seen` is when the file entered this repository, `last_downloaded` when it was last
    served (updated at most hourly, in batches), `upload_time` the upstream's, when its page
    gave one. Retention removes rows least recently downloaded first (`ProxyPin` exempts one).
    """

    __tablename__ = "proxy_files"
    __table_args__ = (sa.UniqueConstraint("repository_id", "filename", name="uq_proxy_file"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = _fk("repositories.id")
    project: str = Field(max_length=255)  # normalized
    filename: str = Field(max_length=300)
    sha256: str = Field(max_length=64)
    size: int = Field(sa_type=sa.BigInteger)
    blob_key: str = Field(max_length=255, index=True)  # garbage collection looks blobs up
    upload_time: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_seen: datetime = _created()
    last_downloaded: datetime = _created()


class ProxySeen(SQLModel, table=True):
    """When a proxy repository's page first listed a file: the time the file entered this
    repository, kept apart from the upstream's PEP 700 upload time (`proxy_pages` lines carry
    both). Written once per (repository, filename) and never changed."""

    __tablename__ = "proxy_seen"
    __table_args__ = (
        sa.UniqueConstraint("repository_id", "filename", name="uq_proxy_seen"),
        sa.Index("ix_proxy_seen_repository_project", "repository_id", "project"),
    )
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(
        sa_column_args=[sa.ForeignKey("repositories.id", ondelete="CASCADE")]
    )
    project: str = Field(max_length=255)  # normalized
    filename: str = Field(max_length=300)
    first_seen: datetime = _created()


class ProxyPin(SQLModel, table=True):
    """A file of a proxy repository that retention never removes (pre-fetched from a lockfile,
    or pinned by an administrator), whether or not it is cached right now.

    `filename` is the name in the download URL; a pin also keeps the file's PEP 658
    `.metadata` record.
    """

    __tablename__ = "proxy_pins"
    repository_id: int = Field(
        sa_column_args=[sa.ForeignKey("repositories.id", ondelete="CASCADE")], primary_key=True
    )
    filename: str = Field(max_length=300, primary_key=True)
    reason: str | None = Field(default=None, max_length=64)  # e.g. "prefetch", "admin"
    pinned_at: datetime = _created()


class BlobOrphan(SQLModel, table=True):
    """A blob no record referenced when garbage collection last looked (see
    `domain/blobgc.py`): pending until claimed, then deleted.

    It may go once it is still unreferenced, the grace period has passed since its last write
    and `delete_after` has passed. `deleting_at` is set by the transaction that claims it
    (after re-checking that nothing references it); `deleted_at` once the blob is gone. Rows of
    deleted blobs are kept a day, so that a writer that wrote the same bytes before the
    deletion learns of it when it commits its record, and writes them again.
    """

    __tablename__ = "blob_orphans"
    blob_key: str = Field(max_length=255, primary_key=True)
    first_seen: datetime = _created()
    delete_after: datetime = Field(sa_type=UTCDateTime, nullable=False)
    deleting_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Lease(SQLModel, table=True):
    """A named, time-limited lease: one holder at a time across every process sharing the
    database (the retention sweep and garbage collection run on one replica at a time)."""

    __tablename__ = "leases"
    name: str = Field(max_length=64, primary_key=True)
    holder: str = Field(max_length=128)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class PrefetchJob(SQLModel, table=True):
    """A pre-fetch asked through the API: a lockfile's files fetched into a proxy repository
    by one process, its progress kept here so that any replica can answer a poll.

    `status` is queued, running or done; `heartbeat` is renewed while it runs (a job whose
    process stopped is reported abandoned). `outcomes` lists every file's outcome once done.
    """

    __tablename__ = "prefetch_jobs"
    id: str = Field(primary_key=True, max_length=32)
    repository_id: int = _fk("repositories.id")
    created_by: str | None = Field(default=None, max_length=150)
    created_at: datetime = _created()
    heartbeat: datetime = _created()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="queued", max_length=16)
    total: int = 0
    fetched: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    outcomes: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    error: str | None = Field(default=None, sa_type=sa.Text)
