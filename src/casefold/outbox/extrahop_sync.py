"""ExtraHop detection tracking (seed 001): the case a detection folds into writes its ticket id,
status, assignee and resolution back onto the detection.

When a detection's alert joins a case, the case is linked to the detection and an update is
queued; every later change of the case's status or assignee queues another, and so does the
creation of the case's Jira issue (its key becomes the detection's ticket id). An update always
sends the case's state at delivery time, so updates are idempotent and a late one never rolls
the detection back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from casefold.cases.model import case_ref
from casefold.connectors.extrahop import DetectionNotFound, ExtraHop, detection_update_for
from casefold.outbox import store
from casefold.outbox.store import Effect
from casefold.outbox.worker import Attempt, Delivered
from casefold.sources.extrahop import detection_id_of
from casefold.store.tables import alerts, case_links, cases

TARGET = "extrahop"
ACTOR_PREFIX = "extrahop:"


def update_effect(case_id: int, detection_id: str, max_attempts: int, key: str | None = None):
    return Effect(
        TARGET,
        "extrahop.update",
        f"{TARGET}:{case_id}:{detection_id}",
        key or f"extrahop:update:{uuid.uuid4().hex}",
        {"case_id": case_id, "detection_id": detection_id},
        case_id,
        max_attempts,
    )


def linked_detections(conn: Connection, case_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for row in conn.execute(
        select(case_links.c.case_id, case_links.c.remote_id).where(
            case_links.c.target == TARGET, case_links.c.case_id.in_(list(case_ids))
        )
    ):
        out.setdefault(int(row.case_id), []).append(str(row.remote_id))
    return out


class ExtraHopPlanner:
    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts

    def plan(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[Effect]:
        effects: list[Effect] = []
        added = {
            int(a): r["case_id"]
            for r in rows
            if r["kind"] == "alert_added" and (a := (r.get("detail") or {}).get("alert_id"))
        }
        if added:
            now = datetime.now(UTC)
            for row in conn.execute(
                select(alerts.c.id, alerts.c.source_id).where(
                    alerts.c.id.in_(list(added)), alerts.c.source == TARGET
                )
            ):
                detection = detection_id_of(str(row.source_id))
                if detection is None:
                    continue
                case_id = added[int(row.id)]
                store.link_case(conn, case_id, TARGET, str(detection), None, now)
                effects.append(
                    update_effect(
                        case_id,
                        str(detection),
                        self.max_attempts,
                        key=f"extrahop:link:{case_id}:{detection}",
                    )
                )
        changed = sorted(
            {
                r["case_id"]
                for r in rows
                if r.get("field") in ("status", "assignee")
                and not str(r.get("actor") or "").startswith(ACTOR_PREFIX)
            }
        )
        if changed:
            for case_id, detections in linked_detections(conn, changed).items():
                effects.extend(update_effect(case_id, d, self.max_attempts) for d in detections)
        return effects


class ExtraHopSync:
    def __init__(self, client: ExtraHop, engine: Engine) -> None:
        self.client = client
        self.engine = engine

    def handlers(self) -> dict[str, Any]:
        return {"extrahop.update": self.update}

    def update(self, attempt: Attempt) -> Delivered:
        case_id = int(attempt.payload["case_id"])
        detection = int(attempt.payload["detection_id"])
        with self.engine.connect() as conn:
            case = conn.execute(
                select(cases.c.status, cases.c.assignee).where(cases.c.id == case_id)
            ).first()
            jira = conn.execute(
                select(case_links.c.remote_id).where(
                    case_links.c.case_id == case_id, case_links.c.target == "jira"
                )
            ).first()
        if case is None:
            return Delivered({"skipped": "the case no longer exists"})
        body: dict[str, Any] = dict(detection_update_for(case.status))
        body["ticket_id"] = str(jira.remote_id) if jira else case_ref(case_id)
        if case.assignee:
            body["assignee"] = case.assignee
        try:
            sent = self.client.update(detection, **body)
        except DetectionNotFound:
            return Delivered({"skipped": f"detection {detection} no longer exists"})
        return Delivered({"detection": detection, "sent": sent})
