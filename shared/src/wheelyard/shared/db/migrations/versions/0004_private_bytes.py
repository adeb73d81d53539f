"""proxy files, streamed proxy pages, per-upstream CA bundles, repository ids never reused

Revision ID: 0004_private_bytes
Revises: 0003_file_identity
Create Date: 2026-12-01 14:30:00

- `proxy_files`: the files each proxy repository fetched from its own upstream and verified;
  stored bytes are served for those only.
- `proxy_pages.files`: a page's files as zlib-compressed JSON lines (read as a stream); the
  rows' `data` keeps the head, with the page's digest. Existing pages are converted both ways.
- `upstreams.ca_bundle`: PEM certificates trusted for one upstream.
- `repositories` on SQLite gets AUTOINCREMENT, so a deleted repository's id is never reused
  (cache keys are built from ids). Postgres sequences never go back already.
"""

from __future__ import annotations

import hashlib
import json
import zlib

import sqlalchemy as sa
import sqlmodel
from alembic import op

import wheelyard.shared.db.models


revision = "0004_private_bytes"
down_revision = "0003_file_identity"
branch_labels = None
depends_on = None


def _pages() -> sa.TableClause:
    return sa.table(
        "proxy_pages",
        sa.column("id", sa.Integer()),
        sa.column("data", sa.JSON()),
        sa.column("files", sa.LargeBinary()),
    )


def _split_page(data: dict) -> tuple[dict, bytes]:
    # The format the proxy-cache writes (wheelyard.shared.domain.proxied), spelled out here so
    # this migration keeps working whatever that module becomes.
    files = data.pop("files", []) or []
    lines = b"".join(json.dumps(entry, separators=(",", ":")).encode() + b"\n" for entry in files)
    head = {k: v for k, v in data.items()}
    digest = hashlib.blake2s(lines, digest_size=8)
    digest.update(json.dumps(head, sort_keys=True).encode())
    head["digest"] = digest.hexdigest()
    head["count"] = len(files)
    return head, zlib.compress(lines, 6)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # Recreates the table with AUTOINCREMENT; the migration environment turns SQLite's
        # foreign keys off meanwhile, so no child row is cascaded away by the copy.
        with op.batch_alter_table(
            "repositories", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    with op.batch_alter_table("upstreams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ca_bundle", sa.Text(), nullable=True))
    with op.batch_alter_table("proxy_pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("files", sa.LargeBinary(), nullable=True))
        batch_op.create_index(batch_op.f("ix_proxy_pages_fetched_at"), ["fetched_at"])
    pages = _pages()
    for row_id, data in bind.execute(sa.select(pages.c.id, pages.c.data)).all():
        data = dict(data or {})
        if "digest" in data:
            continue
        if "files" not in data:
            continue  # a negative entry: nothing to serve
        head, blob = _split_page(data)
        bind.execute(sa.update(pages).where(pages.c.id == row_id).values(data=head, files=blob))
    op.create_table(
        "proxy_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("project", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("upload_time", wheelyard.shared.db.models.UTCDateTime(), nullable=True),
        sa.Column("first_seen", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.Column("last_downloaded", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "filename", name="uq_proxy_file"),
    )
    with op.batch_alter_table("proxy_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_proxy_files_repository_id"), ["repository_id"], unique=False
        )


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("proxy_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proxy_files_repository_id"))
    op.drop_table("proxy_files")
    pages = _pages()
    for row_id, data, blob in bind.execute(
        sa.select(pages.c.id, pages.c.data, pages.c.files)
    ).all():
        data = dict(data or {})
        if blob is None:
            continue
        lines = zlib.decompress(blob).splitlines()
        data["files"] = [json.loads(line) for line in lines if line]
        data.pop("digest", None)
        data.pop("count", None)
        bind.execute(sa.update(pages).where(pages.c.id == row_id).values(data=data))
    with op.batch_alter_table("proxy_pages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proxy_pages_fetched_at"))
        batch_op.drop_column("files")
    with op.batch_alter_table("upstreams", schema=None) as batch_op:
        batch_op.drop_column("ca_bundle")
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table(
            "repositories", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
