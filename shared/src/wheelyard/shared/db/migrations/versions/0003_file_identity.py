"""file identity: one file per (project, canonical version, build tag, tag set)

Adds `files.identity` and the unique constraint `uq_file_identity (repository_id, identity)`,
computing the identity of every existing row from its filename.

Rows that already share an identity (uploaded before this rule: `pkg-1.0-...whl` beside
`pkg-1.0.0-...whl`) are kept as they are, nothing stored is changed: the oldest row takes the
identity, each later one a suffixed, unique one (`... #<row id>`), and a warning names them so
an administrator can delete the newcomers. Any later upload of that identity meets the oldest.

The identity function is a frozen copy of `DistFile.identity` on purpose: a migration must
compute what the schema meant when it was written, whatever the packaging code becomes
(tests/contract/test_database.py checks that the two agree today).

Revision ID: 0003_file_identity
Revises: 0002
Create Date: 2026-12-01 14:30:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion
from sqlmodel.sql.sqltypes import AutoString

revision = "0003_file_identity"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def identity_of(filename: str) -> str:
    """The identity of a stored filename (a frozen copy of `DistFile.identity`)."""
    try:
        if filename.endswith(".whl"):
            project, version, build, tags = parse_wheel_filename(filename)
            fields = (
                sorted({t.interpreter for t in tags}),
                sorted({t.abi for t in tags}),
                sorted({t.platform for t in tags}),
            )
            tag_text = "-".join(".".join(parts) for parts in fields)
            build_text = f"{build[0]}{build[1]}" if build else "-"
            return f"wheel {project} {canonicalize_version(version)} {build_text} {tag_text}"
        project, version = parse_sdist_filename(filename)
        return f"sdist {project} {canonicalize_version(version)}"
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        # Not a name today's rules accept: it is its own identity (filenames are unique).
        return f"file {filename}"


_files = sa.table(
    "files",
    sa.column("id", sa.Integer),
    sa.column("repository_id", sa.Integer),
    sa.column("filename", sa.String),
    sa.column("identity", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity", AutoString(length=512), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_files.c.id, _files.c.repository_id, _files.c.filename).order_by(_files.c.id)
    ).all()
    taken: dict[tuple[int, str], str] = {}
    for row_id, repository_id, filename in rows:
        identity = identity_of(filename)
        first = taken.setdefault((repository_id, identity), filename)
        if first != filename:
            log.warning(
                "files: %r (row %d) is the same file to installers as %r in repository %d; "
                "kept, but delete one of them",
                filename,
                row_id,
                first,
                repository_id,
            )
            identity = f"{identity} #{row_id}"
        bind.execute(_files.update().where(_files.c.id == row_id).values(identity=identity))
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.alter_column("identity", existing_type=AutoString(length=512), nullable=False)
        batch_op.create_unique_constraint("uq_file_identity", ["repository_id", "identity"])


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_constraint("uq_file_identity", type_="unique")
        batch_op.drop_column("identity")
