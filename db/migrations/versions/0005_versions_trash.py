"""Nothing is lost: directions keep every version of a name, and removed concepts, directions and
sentences go to a trash.

Revision ID: 0005
Revises: 0004
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite keeps the first schema's column-level UNIQUE(name) unnamed: name it on reflection to drop it
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    """Create the trash table; give directions a version (existing ones become version 1), a
    tensor fingerprint and a trash mark, with names unique per version; mark trashed concepts."""
    op.create_table(
        "trash",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(256), nullable=False, index=True),
        sa.Column("concept", sa.String(256)),
        sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON),
        sa.Column("payload", sa.LargeBinary),
    )
    bind = op.get_bind()
    old_unique = "directions_name_key" if bind.dialect.name == "postgresql" else "uq_directions_name"
    with op.batch_alter_table("directions", naming_convention=_NAMING) as table:
        table.drop_constraint(old_unique, type_="unique")
        table.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        table.add_column(sa.Column("fingerprint", sa.String(64)))
        table.add_column(sa.Column("trash_id", sa.Integer, sa.ForeignKey("trash.id", name="fk_directions_trash")))
        table.create_unique_constraint("uq_directions_name_version", ["name", "version"])
        table.create_index("ix_directions_name", ["name"])
        table.create_index("ix_directions_trash_id", ["trash_id"])
    with op.batch_alter_table("concepts") as table:
        table.add_column(sa.Column("trash_id", sa.Integer, sa.ForeignKey("trash.id", name="fk_concepts_trash")))
        table.create_index("ix_concepts_trash_id", ["trash_id"])
    directions = sa.table("directions", sa.column("id", sa.Integer), sa.column("tensor", sa.LargeBinary),
                          sa.column("fingerprint", sa.String))
    for row_id, tensor in bind.execute(sa.select(directions.c.id, directions.c.tensor)).all():
        bind.execute(directions.update().where(directions.c.id == row_id)
                     .values(fingerprint=hashlib.sha256(tensor).hexdigest()))


def downgrade() -> None:
    """Back to one direction per name (the newest version of each), without the trash."""
    raise NotImplementedError("a bank with versions and a trash cannot go back to schema 0004")
