"""Active responses and their policy decisions.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="SET NULL")),
        sa.Column("alert_id", Id),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(60)),
        sa.Column("reason", sa.Text),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("ttl_seconds", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("executed_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("undone_at", sa.DateTime(timezone=True)),
        sa.Column("result", sa.JSON),
    )
    op.create_index("ix_responses_target", "responses", ["target", "executed_at"])
    op.create_index("ix_responses_executed", "responses", ["executed_at"])
    op.create_index("ix_responses_case", "responses", ["case_id", "id"])


def downgrade() -> None:
    for name in ("ix_responses_case", "ix_responses_executed", "ix_responses_target"):
        op.drop_index(name, "responses")
    op.drop_table("responses")
