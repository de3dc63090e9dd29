"""The case timeline: every change with old and new value, actor and time.

Written by the same transaction as the change it records, so the timeline can never disagree with
the case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from casefold.store.db import sqlite_time
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


_SQLITE_INSERT = (
    "INSERT INTO case_events (case_id, at, actor, kind, field, old, new, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode("utf-8")


# A connection may carry a callable under this key (set by the runtime on every connection of
# its engine): it sees each batch of timeline rows inside the transaction that writes them, and
# queues the outbox effects they cause in that same transaction.
CHANGE_HOOK = "casefold.case_changes"


def record(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    _write(conn, rows)
    hook = conn.info.get(CHANGE_HOOK)
    if hook is not None:
        hook(conn, rows)


def _write(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "sqlite":
        # The busiest insert of all (one event per folded alert and per case change): written
        # straight through the driver, skipping per-row parameter processing.
        # Events of one batch mostly share one timestamp object (alive in `rows`, so its id
        # is stable here): format it once.
        times: dict[int, str] = {}
        params = []
        for r in rows:
            at = r["at"]
            when = times.get(id(at))
            if when is None:
                when = times[id(at)] = sqlite_time(at)
            params.append(
                (
                    r["case_id"],
                    when,
                    r["actor"],
                    r["kind"],
                    r["field"],
                    _json(r["old"]),
                    _json(r["new"]),
                    _json(r["detail"]),
                )
            )
        conn.exec_driver_sql(_SQLITE_INSERT, params)
        return
    conn.execute(insert(case_events), rows)
