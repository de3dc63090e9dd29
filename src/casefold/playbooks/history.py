"""Reading playbook runs back: every run with each step's input, result or error and duration.

The read side of the `playbook_runs` table, shared by the API, the CLI and the web pages; the
engine that writes it lives in `playbooks.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from casefold.cases.model import case_ref
from casefold.errors import NotFoundError
from casefold.store.tables import alerts, playbook_runs


def runs_for_alert(conn: Connection, alert_id: int) -> list[dict[str, Any]]:
    if conn.execute(select(alerts.c.id).where(alerts.c.id == alert_id)).first() is None:
        raise NotFoundError(f"alert {alert_id} does not exist")
    runs = (
        conn.execute(
            select(playbook_runs)
            .where(playbook_runs.c.alert_id == alert_id)
            .order_by(playbook_runs.c.id)
        )
        .mappings()
        .all()
    )
    return [_run_dict(conn, r) for r in runs]


def runs_for_case(conn: Connection, case_id: int, *, limit: int = 20) -> list[dict[str, Any]]:
    """A case's latest playbook runs, newest first, with their step traces."""
    runs = (
        conn.execute(
            select(playbook_runs)
            .where(playbook_runs.c.case_id == case_id)
            .order_by(playbook_runs.c.id.desc())
            .limit(limit)
        )
        .mappings()
        .all()
    )
    return [_run_dict(conn, r) for r in runs]


def get_run(conn: Connection, run_id: int) -> dict[str, Any]:
    row = conn.execute(select(playbook_runs).where(playbook_runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return _run_dict(conn, row)


def _run_dict(conn: Connection, r: Mapping[str, Any]) -> dict[str, Any]:
    steps = r["steps"] or []
    return {
        "id": r["id"],
        "alert_id": r["alert_id"],
        "playbook": r["playbook"],
        "version": r["version"],
        "status": r["status"],
        "attempts": r["attempts"],
        "case": case_ref(r["case_id"]) if r["case_id"] else None,
        "created_at": r["created_at"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
        "error": r["error"],
        "steps": [
            {
                k: s.get(k)
                for k in (
                    "ref",
                    "action",
                    "status",
                    "attempts",
                    "started_at",
                    "duration_ms",
                    "input",
                    "result",
                    "error",
                    "reason",
                )
            }
            for s in steps
        ],
    }
