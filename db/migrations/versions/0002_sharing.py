"""Sharing: direction recipes and signal-to-noise, concept origins, imported-file ledger.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and the table that sharing directions needs."""
    with op.batch_alter_table("directions") as table:
        table.add_column(sa.Column("snr", sa.Float))
        table.add_column(sa.Column("recipe", sa.JSON))
    with op.batch_alter_table("concepts") as table:
        table.add_column(sa.Column("origin", sa.String(1024)))
    op.create_table(
        "imported_files",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Remove what upgrade added."""
    op.drop_table("imported_files")
    with op.batch_alter_table("concepts") as table:
        table.drop_column("origin")
    with op.batch_alter_table("directions") as table:
        table.drop_column("recipe")
        table.drop_column("snr")
