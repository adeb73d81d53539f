"""when each proxied file was first listed by each proxy repository

Revision ID: 0005_supply_chain
Revises: 0004_private_bytes
Create Date: 2026-12-01 17:30:00

- `proxy_seen`: the time a proxy repository's page first listed a file, kept per repository
  and apart from the upstream's PEP 700 upload time; it stands in for the upload time when the
  upstream gives none (upstream HTML pages never do), so `upload-time` is served for every file
  and the minimum release age has a time to count from.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import wheelyard.shared.db.models


revision = "0005_supply_chain"
down_revision = "0004_private_bytes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_seen",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("project", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("first_seen", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "filename", name="uq_proxy_seen"),
    )
    with op.batch_alter_table("proxy_seen", schema=None) as batch_op:
        batch_op.create_index(
            "ix_proxy_seen_repository_project", ["repository_id", "project"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("proxy_seen", schema=None) as batch_op:
        batch_op.drop_index("ix_proxy_seen_repository_project")
    op.drop_table("proxy_seen")
