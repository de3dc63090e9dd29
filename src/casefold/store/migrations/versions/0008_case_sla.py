"""Case SLA: acknowledged and resolved times, breach times, and the indexes the watcher and the
dashboard read through. Existing cases get their acknowledged and resolved times from their
timeline.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("acknowledged_at", "resolved_at", "sla_ack_breached_at", "sla_resolve_breached_at")
ACK_WAITING = "acknowledged_at IS NULL AND sla_ack_breached_at IS NULL"
RESOLVE_WAITING = "resolved_at IS NULL AND sla_resolve_breached_at IS NULL"
UNACKNOWLEDGED = ("new", "unknown")
DONE = ("resolved", "closed")
CHUNK = 5000  # cases per backfill round: bounded memory on a large store

_cases = sa.table(
    "cases",
    sa.column("id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("assignee", sa.String),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.column("resolved_at", sa.DateTime(timezone=True)),
)
_events = sa.table(
    "case_events",
    sa.column("id", sa.Integer),
    sa.column("case_id", sa.Integer),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("kind", sa.String),
    sa.column("field", sa.String),
    sa.column("new", sa.JSON),
)


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("cases", sa.Column(name, sa.DateTime(timezone=True)))
    _backfill(op.get_bind())
    op.create_index("ix_cases_created", "cases", ["created_at", "id"])
    op.create_index(
        "ix_cases_sla_stats",
        "cases",
        [
            "severity",
            "created_at",
            "acknowledged_at",
            "resolved_at",
            "sla_ack_breached_at",
            "sla_resolve_breached_at",
        ],
    )
    op.create_index(
        "ix_cases_sla_ack_waiting",
        "cases",
        ["severity", "created_at"],
        sqlite_where=sa.text(ACK_WAITING),
        postgresql_where=sa.text(ACK_WAITING),
    )
    op.create_index(
        "ix_cases_sla_resolve_waiting",
        "cases",
        ["severity", "created_at"],
        sqlite_where=sa.text(RESOLVE_WAITING),
        postgresql_where=sa.text(RESOLVE_WAITING),
    )
    for column in ("acknowledged_at", "resolved_at"):
        op.create_index(
            f"ix_cases_{column.removesuffix('_at')}",
            "cases",
            [column],
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for name in (
        "ix_cases_resolved",
        "ix_cases_acknowledged",
        "ix_cases_sla_resolve_waiting",
        "ix_cases_sla_ack_waiting",
        "ix_cases_sla_stats",
        "ix_cases_created",
    ):
        op.drop_index(name, "cases")
    with op.batch_alter_table("cases") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)


def times_from_events(
    events: list[dict[str, Any]], status: str, assignee: str | None, updated_at: datetime
) -> tuple[datetime | None, datetime | None]:
    """A case's (acknowledged_at, resolved_at) from its case_created, status and assignee events,
    oldest first, by the same rules the code applies to every change from now on. When the
    timeline does not say (it always should), the case's updated_at stands in."""
    acknowledged: datetime | None = None
    resolved: datetime | None = None
    for e in events:
        new = e["new"]
        if e["kind"] == "case_created":
            created = new if isinstance(new, dict) else {}
            statuses = [created.get("status")]
            assigned = bool(created.get("assignee"))
        elif e["field"] == "status":
            statuses, assigned = [new], False
        else:
            statuses, assigned = [], bool(new)
        for st in statuses:
            if st is None:
                continue
            if st not in UNACKNOWLEDGED and acknowledged is None:
                acknowledged = e["at"]
            if st in DONE:
                resolved = resolved or e["at"]  # resolved → closed keeps the first time
            else:
                resolved = None  # reopened
        if assigned and acknowledged is None:
            acknowledged = e["at"]
    if acknowledged is None and (status not in UNACKNOWLEDGED or assignee):
        acknowledged = updated_at
    if status in DONE:
        resolved = resolved or updated_at
    else:
        resolved = None
    return acknowledged, resolved


def _backfill(conn: sa.engine.Connection) -> None:
    bounds = conn.execute(sa.select(sa.func.min(_cases.c.id), sa.func.max(_cases.c.id))).first()
    if bounds is None or bounds[0] is None:
        return
    low, high = int(bounds[0]), int(bounds[1])
    update = (
        sa.update(_cases)
        .where(_cases.c.id == sa.bindparam("b_id"))
        .values(acknowledged_at=sa.bindparam("b_ack"), resolved_at=sa.bindparam("b_res"))
    )
    for start in range(low, high + 1, CHUNK):
        end = start + CHUNK
        current = {
            r.id: r
            for r in conn.execute(
                sa.select(
                    _cases.c.id, _cases.c.status, _cases.c.assignee, _cases.c.updated_at
                ).where(_cases.c.id >= start, _cases.c.id < end)
            )
        }
        if not current:
            continue
        history: dict[int, list[dict[str, Any]]] = {i: [] for i in current}
        for r in conn.execute(
            sa.select(
                _events.c.case_id, _events.c.at, _events.c.kind, _events.c.field, _events.c.new
            )
            .where(
                _events.c.case_id >= start,
                _events.c.case_id < end,
                sa.or_(
                    _events.c.kind == "case_created",
                    _events.c.field.in_(("status", "assignee")),
                ),
            )
            .order_by(_events.c.case_id, _events.c.id)
        ).mappings():
            if r["case_id"] in history:
                history[r["case_id"]].append(dict(r))
        rows = []
        for case_id, row in current.items():
            ack, res = times_from_events(history[case_id], row.status, row.assignee, row.updated_at)
            if ack is not None or res is not None:
                rows.append({"b_id": case_id, "b_ack": ack, "b_res": res})
        if rows:
            conn.execute(update, rows)
