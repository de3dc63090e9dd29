"""Playbook runs, each with its steps' records.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "playbook_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="SET NULL")),
        sa.Column("playbook", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("lease_until", TS),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("case_opened", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.UniqueConstraint("alert_id", "playbook", name="uq_run_alert_playbook"),
    )
    op.create_index("ix_runs_queue", "playbook_runs", ["status", "not_before"])
    op.create_index("ix_runs_alert", "playbook_runs", ["alert_id"])


def downgrade() -> None:
    op.drop_table("playbook_runs")
