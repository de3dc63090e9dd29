"""`casefold wazuh wodle`: Casefold's pipeline health as JSON lines, for a Wazuh command wodle.

Each line is one check, `{"casefold": {"check": …, "status": "ok"|"warning"|"critical", …}}`;
the rules in `wazuh_side/rules/casefold_wodle_rules.xml` raise an alert on anything but ok:
- `spool`: alerts the Wazuh integration could not deliver yet (its spool directory);
- `outbox`: dead effects (a ticket, a detection update that gave up), the last delivery error;
- `enrichment`: each provider's budget left today;
- `folding`: alerts stored but not yet folded into cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from casefold.outbox import store as outbox_store
from casefold.store.tables import ALERT_PENDING, OUTBOX_DEAD, alerts, outbox

SPOOL_WARNING = 100  # spooled alerts before the check warns
SPOOL_CRITICAL = 10_000
PENDING_WARNING = 10_000


def spool_check(spool_dir: Path | None) -> dict[str, Any]:
    if spool_dir is None:
        return {"check": "spool", "status": "ok", "depth": None, "note": "no spool dir given"}
    if not spool_dir.is_dir():
        return {"check": "spool", "status": "ok", "depth": 0, "dir": str(spool_dir)}
    depth = sum(1 for p in spool_dir.iterdir() if p.is_file() and p.suffix == ".json")
    rejected_dir = spool_dir / "rejected"
    rejected = sum(1 for p in rejected_dir.iterdir() if p.is_file()) if rejected_dir.is_dir() else 0
    status = (
        "critical" if depth >= SPOOL_CRITICAL else "warning" if depth >= SPOOL_WARNING else "ok"
    )
    if rejected and status == "ok":
        status = "warning"
    return {
        "check": "spool",
        "status": status,
        "depth": depth,
        "rejected": rejected,
        "dir": str(spool_dir),
    }


def outbox_check(conn: Connection) -> dict[str, Any]:
    counts = outbox_store.counts(conn)
    last = conn.execute(
        select(outbox.c.kind, outbox.c.last_error, outbox.c.updated_at)
        .where(outbox.c.last_error.is_not(None))
        .order_by(outbox.c.updated_at.desc())
        .limit(1)
    ).first()
    dead = counts.get(OUTBOX_DEAD, 0)
    out: dict[str, Any] = {
        "check": "outbox",
        "status": "critical" if dead else "ok",
        "dead": dead,
        "pending": counts.get("pending", 0),
    }
    if last is not None:
        out["last_error"] = f"{last.kind}: {last.last_error}"[:500]
    return out


def folding_check(conn: Connection) -> dict[str, Any]:
    pending = conn.execute(
        select(func.count()).select_from(alerts).where(alerts.c.state == ALERT_PENDING)
    ).scalar_one()
    return {
        "check": "folding",
        "status": "warning" if pending >= PENDING_WARNING else "ok",
        "pending": int(pending),
    }


def enrichment_checks(budgets: Any, providers: list[str]) -> Iterator[dict[str, Any]]:
    for name in providers:
        status = budgets.status(name)
        windows = {k: v for k, v in status.items() if isinstance(v, dict)}
        left = min((w["limit"] - w["used"] for w in windows.values()), default=None)
        state = "warning" if (left is not None and left <= 0) or "closed_until" in status else "ok"
        yield {
            "check": "enrichment",
            "provider": name,
            "status": state,
            "left": left,
            **({"closed_until": status["closed_until"]} if "closed_until" in status else {}),
        }


def status_lines(runtime: Any, spool_dir: Path | None) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    with runtime.engine.connect() as conn:
        checks = [spool_check(spool_dir), outbox_check(conn), folding_check(conn)]
    checks += list(enrichment_checks(runtime.enricher.budgets, sorted(runtime.enricher.providers)))
    return [{"casefold": {**c, "at": now}} for c in checks]
