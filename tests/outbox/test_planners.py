"""What the outbox planners make of timeline rows they have no business with: nothing, and no
error (SLA breaches, merges)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from casefold.cases import service, timeline
from casefold.config import JiraSettings, Settings
from casefold.outbox.extrahop_sync import ExtraHopPlanner
from casefold.outbox.jira_sync import JiraPlanner
from casefold.store.db import make_engine, migrate


@pytest.fixture
def engine(tmp_path: Path, database_url: str | None):
    engine = make_engine(Settings(data_dir=tmp_path, database_url=database_url))
    migrate(engine)
    yield engine
    engine.dispose()


def test_sla_and_merge_events_plan_no_effect(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        case_id = service.open_case(conn, summary="Beacon", severity="critical")
        rows = [
            timeline.event_row(
                case_id,
                "sla_breached",
                field=field,
                detail={"due_at": now.isoformat(), "target_seconds": 900, "severity": "critical"},
                at=now,
            )
            for field in ("acknowledge", "resolve")
        ]
        rows += [
            timeline.event_row(case_id, "merged", actor="alice", detail={"cases": ["CASE-9"]}),
            timeline.event_row(case_id, "merged_into", actor="alice", detail={"case": "CASE-9"}),
        ]
        jira = JiraPlanner(JiraSettings(url="https://jira.example", project="SEC"))
        assert jira.plan(conn, rows) == []
        assert ExtraHopPlanner(3).plan(conn, rows) == []
