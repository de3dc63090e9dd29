"""Migration 0008 gives existing cases their acknowledged and resolved times from their timeline,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine

from casefold.config import Settings
from casefold.store.db import MIGRATIONS_DIR, make_engine, migrate

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

# The tables as revision 0007 left them (only the columns written here).
cases_0007 = sa.table(
    "cases",
    sa.column("id", sa.Integer),
    sa.column("summary", sa.String),
    sa.column("description", sa.Text),
    sa.column("status", sa.String),
    sa.column("priority", sa.String),
    sa.column("severity", sa.String),
    sa.column("assignee", sa.String),
    sa.column("fields", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
events_0007 = sa.table(
    "case_events",
    sa.column("case_id", sa.Integer),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String),
    sa.column("kind", sa.String),
    sa.column("field", sa.String),
    sa.column("old", sa.JSON),
    sa.column("new", sa.JSON),
)


def upgrade(engine: Engine, revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def add_case(
    conn: Any, case_id: int, status: str, events: list[tuple[float, str, Any]], **kw: Any
) -> None:
    """A case created at T0 (its case_created event says how), then `events` as (minute,
    field, new value)."""
    conn.execute(
        sa.insert(cases_0007).values(
            id=case_id,
            summary=f"case {case_id}",
            description="",
            status=status,
            priority="unknown",
            severity="high",
            assignee=kw.get("assignee"),
            fields={},
            created_at=T0,
            updated_at=kw.get("updated_at", T0),
        )
    )
    created = kw.get("created", {"status": "new", "assignee": None})
    rows = [
        {
            "case_id": case_id,
            "at": T0,
            "actor": "x",
            "kind": "case_created",
            "field": None,
            "old": None,
            "new": created,
        }
    ]
    for at, field, new in events:
        kind = f"{field}_changed"
        rows.append(
            {
                "case_id": case_id,
                "at": minutes(at),
                "actor": "x",
                "kind": kind,
                "field": field,
                "old": None,
                "new": new,
            }
        )
    conn.execute(sa.insert(events_0007), rows)


def test_backfill_from_the_timeline(tmp_path: Path, database_url: str | None):
    engine = make_engine(Settings(data_dir=tmp_path, database_url=database_url))
    upgrade(engine, "0007")
    with engine.begin() as conn:
        add_case(
            conn,
            1,
            "closed",
            [(5, "status", "in_progress"), (60, "status", "resolved"), (90, "status", "closed")],
        )
        add_case(
            conn,
            2,
            "new",
            [(3, "priority", "high"), (7, "assignee", "alice"), (9, "assignee", None)],
        )
        add_case(
            conn, 3, "in_progress", [(10, "status", "resolved"), (20, "status", "in_progress")]
        )
        add_case(
            conn,
            4,
            "in_progress",
            [],
            assignee="bob",
            created={"status": "in_progress", "assignee": "bob"},
        )
        add_case(conn, 5, "new", [])
        # closed with no status event at all (not expected): its last change stands in
        add_case(conn, 6, "closed", [], updated_at=minutes(30))
        add_case(conn, 7, "new", [(4, "status", "on_hold"), (8, "status", "new")])
    migrate(engine)
    with engine.connect() as conn:
        got = {
            r.id: (r.acknowledged_at, r.resolved_at, r.sla_ack_breached_at)
            for r in conn.execute(
                sa.text("SELECT id, acknowledged_at, resolved_at, sla_ack_breached_at FROM cases")
            )
        }
    engine.dispose()

    def norm(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite, read as text
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    assert {k: tuple(norm(v) for v in vals) for k, vals in got.items()} == {
        1: (minutes(5), minutes(60), None),  # resolved → closed keeps the first time
        2: (minutes(7), None, None),  # assigned; unassigning does not undo it
        3: (minutes(10), None, None),  # reopened
        4: (T0, None, None),  # created in progress and assigned
        5: (None, None, None),
        6: (minutes(30), minutes(30), None),
        7: (minutes(4), None, None),  # back to new is still acknowledged
    }
