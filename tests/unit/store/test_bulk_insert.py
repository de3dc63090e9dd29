"""File intake's receipt-less insert stores alerts exactly as the API's insert does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from casefold.config import Settings
from casefold.intake.persist import alert_row, store_alerts, store_alerts_counted
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.store.tables import alerts


def _samples(samples_dir: Path) -> list[dict]:
    docs = []
    for path in sorted(samples_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        if "rule" in doc:
            docs.append(doc)
    assert len(docs) >= 5
    return docs


def test_counted_insert_matches_the_receipt_insert(
    tmp_path: Path, database_url: str | None, samples_dir: Path
):
    runtime = Runtime(Settings(data_dir=tmp_path / "data", database_url=database_url))
    runtime.open_store()
    try:
        docs = _samples(samples_dir)
        now = datetime.now(UTC)
        parsed = [(parse_wazuh_alert(d), d) for d in docs]
        half = len(parsed) // 2
        with runtime.engine.begin() as conn:
            store_alerts(conn, [alert_row(a, d, now) for a, d in parsed[:half]])
        with runtime.engine.begin() as conn:
            # Every alert again, plus a repeat inside the batch: only the second half is new.
            rows = [alert_row(a, d, now) for a, d in parsed] + [alert_row(*parsed[-1], now)]
            assert store_alerts_counted(conn, rows) == len(parsed) - half
        with runtime.engine.connect() as conn:
            stored = {r.source_id: r for r in conn.execute(select(alerts))}
            assert len(stored) == len(parsed)
            for alert, doc in parsed:
                row = stored[alert.source_id]
                assert row.normalized == alert.to_dict()
                assert json.loads(row.raw) == doc
                assert row.time_utc.replace(tzinfo=UTC) == alert.time_utc
                assert row.state == "pending"
            # Range queries see both kinds of rows the same way.
            earliest = min(a.time_utc for a, _ in parsed)
            after = conn.execute(
                select(alerts.c.source_id).where(
                    alerts.c.time_utc > earliest + timedelta(microseconds=1)
                )
            ).scalars()
            expected = {a.source_id for a, _ in parsed if a.time_utc > earliest}
            assert set(after) == expected
    finally:
        runtime.stop()
