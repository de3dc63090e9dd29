"""Threat-intel answer cache.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrichment_cache",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("value", sa.JSON),
        sa.Column("negative", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("enrichment_cache")
