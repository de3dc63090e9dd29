"""Storing validated alerts: the writer job behind every acknowledgement.

Duplicates are decided by the database (a unique dedup key and INSERT … ON CONFLICT DO NOTHING),
so two receivers racing on the same alert still store it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from casefold.errors import InvalidAlertError
from casefold.sources.model import NormalizedAlert
from casefold.sources.normalized import encode_normalized, without_nul
from casefold.store.db import dialect_insert, sqlite_time
from casefold.store.notify import ALERTS, notify
from casefold.store.tables import ALERT_PENDING, alerts


@dataclass(slots=True)
class Receipt:
    id: int
    duplicate: bool


def alert_row(
    alert: NormalizedAlert,
    raw: Any,
    received_at: datetime,
    *,
    text: bytes | None = None,
    complete: bool = True,
) -> dict[str, Any]:
    """The alerts row of one validated alert; `text` is `raw`'s JSON as received, if known.

    With `complete=False`, `alert` is only a header (`wazuh_header`): the row's normalised view
    is JSON null until folding completes it (`complete_view`).

    Raises InvalidAlertError for an alert that can be read but not stored (nested deeper than
    any JSON encoder writes back).
    """
    if complete:
        alert, normalized = encode_normalized(alert)
        view: orjson.Fragment | None = orjson.Fragment(normalized)
    else:
        columns = (alert.title, alert.node, alert.source_id, alert.time_original, alert.rule_id)
        if any(v and "\x00" in v for v in (*columns, alert.agent_id, alert.agent_name)):
            alert = without_nul(alert)
        view = None
    return {
        "source": alert.source,
        "node": alert.node[:255],
        "source_id": alert.source_id[:255],
        "dedup_key": alert.dedup_key[:600],
        "received_at": received_at,
        "time_utc": alert.time_utc,
        "time_original": alert.time_original[:64],
        "level": alert.level,
        "rule_id": alert.rule_id[:64] if alert.rule_id else None,
        "title": alert.title,
        "agent_id": alert.agent_id[:64] if alert.agent_id else None,
        "agent_name": alert.agent_name[:255] if alert.agent_name else None,
        "state": ALERT_PENDING,
        # Encoded once, straight from the dataclass (same JSON as `to_dict`, ~half the CPU); the
        # JSON column's serializer passes a Fragment through untouched.
        "normalized": view,
        "raw": text.strip().decode("utf-8") if text is not None else _raw_json(raw),
    }


def _raw_json(raw: Any) -> str:
    try:
        return orjson.dumps(raw).decode("utf-8")
    except orjson.JSONEncodeError:
        pass
    # orjson writes at most 254 levels of nesting (it reads 1024) and no integers beyond 64 bits;
    # the standard library takes those, up to Python's recursion limit.
    try:
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
    except (RecursionError, ValueError, TypeError) as exc:
        raise InvalidAlertError(f"the alert cannot be stored as JSON: {exc}") from None


def store_alerts(conn: Connection, rows: list[dict[str, Any]]) -> list[Receipt]:
    """Insert rows (from `alert_row`); return one receipt per row, in order."""
    if not rows:
        return []
    received = datetime.now(UTC)
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["received_at"] = received
        fresh.setdefault(row["dedup_key"], row)  # a repeat inside the batch is a duplicate too
    inserted: dict[str, int]
    if conn.dialect.name == "sqlite":
        # Straight to the driver, one prepared statement per row: SQLAlchemy's RETURNING
        # executemany (cache key, bind processing, result set) cost twice SQLite's insert, in
        # the writer that every acknowledgement waits for.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        inserted = {}
        params = _sqlite_params(fresh.values(), sqlite_time(received))
        for key, values in zip(fresh, params, strict=True):
            found = cursor.execute(_SQLITE_INSERT_RETURNING, values).fetchone()
            if found is not None:  # None: already stored (ON CONFLICT DO NOTHING)
                inserted[key] = found[0]
        cursor.close()
    else:
        stmt = (
            dialect_insert(conn, alerts)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(alerts.c.id, alerts.c.dedup_key)
        )
        inserted = {r.dedup_key: r.id for r in conn.execute(stmt, list(fresh.values()))}
        if inserted:
            notify(conn, ALERTS)
    missing = [k for k in fresh if k not in inserted]
    existing: dict[str, int] = {}
    for i in range(0, len(missing), 500):
        chunk = missing[i : i + 500]
        existing.update(
            (r.dedup_key, r.id)
            for r in conn.execute(
                select(alerts.c.dedup_key, alerts.c.id).where(alerts.c.dedup_key.in_(chunk))
            )
        )
    receipts: list[Receipt] = []
    first_seen: set[str] = set()
    for row in rows:
        key = row["dedup_key"]
        if key in inserted and key not in first_seen:
            first_seen.add(key)
            receipts.append(Receipt(inserted[key], duplicate=False))
        else:
            receipts.append(Receipt(inserted.get(key) or existing[key], duplicate=True))
    return receipts


# The alert row's columns (`alert_row`), in the order of the bulk insert below.
ALERT_COLUMNS = (
    "source",
    "node",
    "source_id",
    "dedup_key",
    "received_at",
    "time_utc",
    "time_original",
    "level",
    "rule_id",
    "title",
    "agent_id",
    "agent_name",
    "state",
    "normalized",
    "raw",
)
_SQLITE_BULK_INSERT = (
    f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ALERT_COLUMNS)}) ON CONFLICT (dedup_key) DO NOTHING"
)


_SQLITE_INSERT_RETURNING = _SQLITE_BULK_INSERT + " RETURNING id"


def store_alerts_counted(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert rows (from `alert_row`) without receipts; return how many were new.

    For file intake (the tailer, `casefold ingest`), where nobody waits for alert ids. On SQLite
    the rows go straight to the driver: SQLAlchemy's per-row parameter processing cost as much as
    SQLite's own insert, and the tailer's throughput is bounded by this loop.
    """
    if not rows:
        return 0
    received = datetime.now(UTC)
    if conn.dialect.name != "sqlite":
        for row in rows:
            row["received_at"] = received
        stmt = (
            dialect_insert(conn, alerts)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(alerts.c.id)  # why: psycopg reports no rowcount for executemany
        )
        stored = len(conn.execute(stmt, rows).all())
        if stored:
            notify(conn, ALERTS)
        return stored
    params = _sqlite_params(rows, sqlite_time(received))
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    before = dbapi.total_changes
    conn.exec_driver_sql(_SQLITE_BULK_INSERT, params)
    return int(dbapi.total_changes - before)


def _sqlite_params(rows: Iterable[dict[str, Any]], received: str) -> list[tuple[Any, ...]]:
    """Rows as parameter tuples in ALERT_COLUMNS order, times as `sqlite_time` writes them."""
    return [
        (
            row["source"],
            row["node"],
            row["source_id"],
            row["dedup_key"],
            received,
            sqlite_time(row["time_utc"]),
            row["time_original"],
            row["level"],
            row["rule_id"],
            row["title"],
            row["agent_id"],
            row["agent_name"],
            row["state"],
            _json_text(row["normalized"]),
            row["raw"],
        )
        for row in rows
    ]


def _json_text(value: Any) -> str:
    if isinstance(value, orjson.Fragment):
        return orjson.dumps(value).decode("utf-8")
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
