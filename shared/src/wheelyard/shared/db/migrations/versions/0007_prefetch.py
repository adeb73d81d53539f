"""pre-fetch jobs asked through the API

Revision ID: 0007_prefetch
Revises: 0006_retention
Create Date: 2026-12-01 18:00:00

- `prefetch_jobs`: one row per pre-fetch asked through the API, its progress and outcomes
  (any replica answers a poll from here).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import wheelyard.shared.db.models


revision = "0007_prefetch"
down_revision = "0006_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prefetch_jobs",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=150), nullable=True),
        sa.Column("created_at", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.Column("heartbeat", wheelyard.shared.db.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", wheelyard.shared.db.models.UTCDateTime(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("cached", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prefetch_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prefetch_jobs_repository_id"), ["repository_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("prefetch_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prefetch_jobs_repository_id"))
    op.drop_table("prefetch_jobs")
