"""retention of proxy caches and garbage collection of blobs

Revision ID: 0006_retention
Revises: 0004_private_bytes
Create Date: 2026-12-01 17:40:00

- `proxy_pins`: files of a proxy repository that retention never removes.
- `blob_orphans`: blobs found unreferenced, deleted after a grace period if still so.
- `leases`: one holder at a time for the retention sweep and garbage collection.
- indexes on the blob keys of `files` and `proxy_files` (garbage collection asks by key).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import wheelyard.shared.db.models


revision = "0006_retention"
down_revision = "0005_supply_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_pins",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("pinned_at", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id", "filename"),
    )
    op.create_table(
        "blob_orphans",
        sa.Column("blob_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("first_seen", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.Column("delete_after", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.Column("deleting_at", wheelyard.shared.db.models.UTCDateTime(), nullable=True),
        sa.Column("deleted_at", wheelyard.shared.db.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("blob_key"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("expires_at", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_files_blob_key"), ["blob_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_files_metadata_blob_key"), ["metadata_blob_key"], unique=False
        )
    with op.batch_alter_table("proxy_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proxy_files_blob_key"), ["blob_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("proxy_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proxy_files_blob_key"))
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_metadata_blob_key"))
        batch_op.drop_index(batch_op.f("ix_files_blob_key"))
    op.drop_table("leases")
    op.drop_table("blob_orphans")
    op.drop_table("proxy_pins")
