"""Verdicts on case observables, provider budgets.

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
    with op.batch_alter_table("case_observables") as batch:
        batch.add_column(sa.Column("verdicts", sa.JSON))
        batch.add_column(sa.Column("verdict", sa.String(20)))
        batch.add_column(sa.Column("enriched_at", sa.DateTime(timezone=True)))
        batch.create_index("ix_case_observables_enriched", ["enriched_at", "id"])
    op.create_table(
        "provider_budgets",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_budgets")
    with op.batch_alter_table("case_observables") as batch:
        batch.drop_index("ix_case_observables_enriched")
        batch.drop_column("enriched_at")
        batch.drop_column("verdict")
        batch.drop_column("verdicts")
