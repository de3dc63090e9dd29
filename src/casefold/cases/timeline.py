"""The case timeline: every change with old and new value, actor and time.

Written by the same transaction as the change it records, so the timeline can never disagree with
the case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from casefold.store.tables import case_events

SYSTEM_ACTOR = "casefold"


def event_row(
    case_id: int,
    kind: str,
    *,
    actor: str = SYSTEM_ACTOR,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "at": at or datetime.now(UTC),
        "actor": actor,
        "kind": kind,
        "field": field,
        "old": old,
        "new": new,
        "detail": detail,
    }


def record(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(case_events), rows)
