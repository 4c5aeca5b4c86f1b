"""The first bank schema: encoders, concepts, sentences, encodings, statistics, moments,
directions.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NOW = dict(timezone=True)


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "encoders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(1024), nullable=False),
        sa.Column("encoder_class", sa.String(128), nullable=False),
        sa.Column("hidden_size", sa.Integer, nullable=False),
        sa.Column("max_length", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("weights_signature", sa.String(2048), index=True),
        sa.Column("created_at", sa.DateTime(**_NOW), nullable=False),
    )
    op.create_table(
        "concepts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(**_NOW), nullable=False),
    )
    op.create_table(
        "sentences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "concept_id", sa.Integer, sa.ForeignKey("concepts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("generator", sa.String(64), nullable=False),
        sa.Column("generator_model", sa.String(1024)),
        sa.Column("prompt_version", sa.String(64)),
        sa.Column("settings", sa.JSON),
        sa.Column("created_at", sa.DateTime(**_NOW), nullable=False),
        sa.UniqueConstraint("concept_id", "content_hash"),
    )
    op.create_table(
        "sentence_encodings",
        sa.Column(
            "sentence_id",
            sa.Integer,
            sa.ForeignKey("sentences.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "encoder_id",
            sa.Integer,
            sa.ForeignKey("encoders.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
    )
    op.create_table(
        "statistics",
        sa.Column(
            "concept_id", sa.Integer, sa.ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "encoder_id", sa.Integer, sa.ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("mean_norm", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(**_NOW), nullable=False),
    )
    op.create_table(
        "moments",
        sa.Column(
            "concept_id", sa.Integer, sa.ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "encoder_id", sa.Integer, sa.ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("mean", sa.LargeBinary, nullable=False),
        sa.Column("m2", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "directions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("encoder_id", sa.Integer, sa.ForeignKey("encoders.id"), nullable=False),
        sa.Column("source", sa.String(256)),
        sa.Column("target", sa.String(256)),
        sa.Column("source_count", sa.Integer),
        sa.Column("target_count", sa.Integer),
        sa.Column("norm", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(**_NOW), nullable=False),
        sa.Column("tensor", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    """Drop every table of the first schema."""
    for table in ("directions", "moments", "statistics", "sentence_encodings", "sentences", "concepts", "encoders"):
        op.drop_table(table)
