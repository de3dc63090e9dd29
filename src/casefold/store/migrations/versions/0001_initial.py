"""Initial schema: tokens, alerts, cases and what hangs off a case.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS),
        sa.Column("revoked_at", TS),
    )
    op.create_table(
        "cases",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(200)),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("first_seen", TS),
        sa.Column("last_seen", TS),
        sa.Column("alert_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("source", sa.String(40)),
        sa.Column("fold_rule", sa.String(200)),
        sa.Column("fold_key", sa.String(600)),
        sa.Column("fold_open", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index(
        "ux_cases_fold_open",
        "cases",
        ["fold_rule", "fold_key"],
        unique=True,
        sqlite_where=sa.text("fold_open"),
        postgresql_where=sa.text("fold_open"),
    )
    op.create_index("ix_cases_status_updated", "cases", ["status", "updated_at"])
    op.create_index("ix_cases_updated", "cases", ["updated_at", "id"])
    op.create_index("ix_cases_assignee", "cases", ["assignee"])
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("dedup_key", sa.String(600), nullable=False, unique=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("time_utc", TS, nullable=False),
        sa.Column("time_original", sa.String(64), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(64)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("agent_name", sa.String(255)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="SET NULL")),
        sa.Column("fold_rule", sa.String(200)),
        sa.Column("normalized", sa.JSON, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_alerts_pending",
        "alerts",
        ["id"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_alerts_case", "alerts", ["case_id", "id"])
    op.create_index("ix_alerts_time", "alerts", ["time_utc"])
    op.create_index("ix_alerts_rule", "alerts", ["rule_id"])
    op.create_table(
        "case_tags",
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(200), primary_key=True),
    )
    op.create_index("ix_case_tags_tag", "case_tags", ["tag", "case_id"])
    op.create_table(
        "case_observables",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("value", sa.String(2048), nullable=False),
        sa.Column("kind", sa.String(20)),
        sa.Column("public", sa.Boolean),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("alert_count", sa.Integer, nullable=False, server_default="1"),
        sa.UniqueConstraint("case_id", "type", "value", name="uq_case_observable"),
    )
    op.create_index("ix_case_observables_value", "case_observables", ["type", "value"])
    op.create_table(
        "case_comments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_case_comments_case", "case_comments", ["case_id", "id"])
    op.create_table(
        "case_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("field", sa.String(100)),
        sa.Column("old", sa.JSON),
        sa.Column("new", sa.JSON),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id", "id"])


def downgrade() -> None:
    for name in (
        "case_events",
        "case_comments",
        "case_observables",
        "case_tags",
        "alerts",
        "cases",
        "api_tokens",
    ):
        op.drop_table(name)
