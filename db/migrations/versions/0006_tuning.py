"""Tuned settings on directions: each version of a direction keeps every tuning dbank tune made
for it (scale, cross-attention guidance, the scores and the rule that chose them), newest last.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add directions.tuning (JSON list, empty for directions never tuned)."""
    with op.batch_alter_table("directions") as table:
        table.add_column(sa.Column("tuning", sa.JSON))


def downgrade() -> None:
    """Drop the tunings."""
    with op.batch_alter_table("directions") as table:
        table.drop_column("tuning")
