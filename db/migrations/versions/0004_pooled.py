"""SDXL: the size of an encoder's pooled embedding (NULL: none, as for SD 1.x/2.x).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add encoders.pooled_size."""
    with op.batch_alter_table("encoders") as table:
        table.add_column(sa.Column("pooled_size", sa.Integer))


def downgrade() -> None:
    """Remove encoders.pooled_size."""
    with op.batch_alter_table("encoders") as table:
        table.drop_column("pooled_size")
