"""Storing validated alerts: the writer job behind every acknowledgement.

Duplicates are decided by the database (a unique dedup key and INSERT … ON CONFLICT DO NOTHING),
so two receivers racing on the same alert still store it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from casefold.sources.model import NormalizedAlert
from casefold.store.db import dialect_insert
from casefold.store.tables import ALERT_PENDING, alerts


@dataclass(slots=True)
class Receipt:
    id: int
    duplicate: bool


def alert_row(alert: NormalizedAlert, raw: Any, received_at: datetime) -> dict[str, Any]:
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
        "normalized": alert.to_dict(),
        "raw": orjson.dumps(raw).decode("utf-8"),
    }


def store_alerts(conn: Connection, rows: list[dict[str, Any]]) -> list[Receipt]:
    """Insert rows (from `alert_row`); return one receipt per row, in order."""
    if not rows:
        return []
    received = datetime.now(UTC)
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["received_at"] = received
        fresh.setdefault(row["dedup_key"], row)  # a repeat inside the batch is a duplicate too
    stmt = (
        dialect_insert(conn, alerts)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(alerts.c.id, alerts.c.dedup_key)
    )
    inserted = {r.dedup_key: r.id for r in conn.execute(stmt, list(fresh.values()))}
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
