"""Case SLAs on a real store (SQLite and PostgreSQL): acknowledged and resolved times kept with
every change, the badge the UI shows, missed deadlines recorded once on the timeline, the
dashboard's numbers, and no outbox effect from a breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.jira import DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake
from sqlalchemy import func, select, update
from support.alerts import sshd_alert

from casefold.cases import queries, service
from casefold.cases.sla import SlaBadge, SlaTargets, SlaWatcher, sla_badge, sla_stats
from casefold.config import Settings
from casefold.store.tables import case_events, cases, outbox

CRITICAL_ACK = 900  # the default targets
CRITICAL_RESOLVE = 14_400


@pytest.fixture
def settings(tmp_path, database_url: str | None) -> Settings:
    # The watcher's thread is off: each test runs its passes itself.
    return Settings(data_dir=tmp_path / "data", database_url=database_url, sla_check_seconds=0)


def open_case(api, severity: str = "critical", **kw: Any) -> int:
    return api.runtime.writer.run(
        lambda conn: service.open_case(conn, summary="Beacon", severity=severity, **kw)
    )


def set_times(api, case_id: int, **values: datetime | None) -> None:
    api.runtime.writer.run(
        lambda conn: conn.execute(update(cases).where(cases.c.id == case_id).values(**values))
    )


def backdate(api, case_id: int, seconds: float) -> datetime:
    created = datetime.now(UTC) - timedelta(seconds=seconds)
    set_times(api, case_id, created_at=created)
    return created


def case(api, case_id: int) -> dict[str, Any]:
    r = api.get(f"/api/v1/cases/CASE-{case_id}")
    assert r.status_code == 200, r.text
    return r.json()


def stored(api, case_id: int) -> dict[str, Any]:
    with api.runtime.engine.connect() as conn:
        return queries.get_case(conn, case_id)


def breach_events(api, case_id: int) -> list[dict[str, Any]]:
    items = api.get(f"/api/v1/cases/CASE-{case_id}/timeline").json()["items"]
    return [e for e in items if e["kind"] == "sla_breached"]


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- acknowledged and resolved -------------------------------------------------------------------


def test_a_new_case_is_neither_acknowledged_nor_resolved(api):
    api.post("/api/v1/alerts/wazuh", json=sshd_alert(1))
    api.fold()
    [found] = api.get("/api/v1/cases").json()["items"]
    assert found["acknowledged_at"] is None and found["resolved_at"] is None


def test_leaving_new_acknowledges_once(api):
    case_id = open_case(api)
    before = datetime.now(UTC)
    first = api.patch(f"/api/v1/cases/CASE-{case_id}", role="analyst", json={"status": "on_hold"})
    acknowledged = at(first.json()["acknowledged_at"])
    assert acknowledged is not None and acknowledged >= before - timedelta(seconds=1)
    for change in ({"assignee": "alice"}, {"status": "new"}, {"status": "in_progress"}):
        assert (
            at(api.patch(f"/api/v1/cases/CASE-{case_id}", json=change).json()["acknowledged_at"])
            == acknowledged
        )
    assert case(api, case_id)["resolved_at"] is None


def test_an_assignee_acknowledges_and_unassigning_does_not_undo_it(api):
    case_id = open_case(api)
    assert (
        api.patch(f"/api/v1/cases/CASE-{case_id}", json={"priority": "high"}).json()[
            "acknowledged_at"
        ]
        is None
    )
    acknowledged = api.patch(f"/api/v1/cases/CASE-{case_id}", json={"assignee": "bob"}).json()[
        "acknowledged_at"
    ]
    assert acknowledged is not None
    after = api.patch(f"/api/v1/cases/CASE-{case_id}", json={"assignee": None}).json()
    assert after["acknowledged_at"] == acknowledged and after["status"] == "new"


def test_resolving_closing_and_reopening(api):
    case_id = open_case(api)
    resolved = api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "resolved"}).json()
    # resolving straight from new acknowledges too
    assert resolved["acknowledged_at"] is not None
    assert resolved["resolved_at"] is not None
    closed = api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "closed"}).json()
    assert closed["resolved_at"] == resolved["resolved_at"]  # the first time it was done
    reopened = api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "in_progress"}).json()
    assert reopened["resolved_at"] is None
    assert reopened["acknowledged_at"] == resolved["acknowledged_at"]
    again = api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "closed"}).json()
    assert at(again["resolved_at"]) > at(resolved["resolved_at"])


def test_a_case_opened_assigned_or_closed_says_so(api):
    assigned = open_case(api, assignee="alice")
    closed = open_case(api, status="closed")
    plain = open_case(api)
    assert case(api, assigned)["acknowledged_at"] is not None
    assert case(api, assigned)["resolved_at"] is None
    assert case(api, closed)["acknowledged_at"] == case(api, closed)["created_at"]
    assert case(api, closed)["resolved_at"] == case(api, closed)["created_at"]
    assert case(api, plain)["acknowledged_at"] is None


# -- the badge -----------------------------------------------------------------------------------


def test_badge_follows_the_deadlines(api):
    targets = api.runtime.sla_targets
    case_id = open_case(api)
    c = stored(api, case_id)
    created = c["created_at"]

    def badge(after: timedelta, data: dict[str, Any] | None = None) -> SlaBadge | None:
        return sla_badge(data or stored(api, case_id), targets, created + after)

    due = created + timedelta(seconds=CRITICAL_ACK)
    assert badge(timedelta(minutes=3)) == SlaBadge("acknowledge", "ok", due, "ack in 12 min")
    assert badge(timedelta(minutes=12)) == SlaBadge("acknowledge", "due_soon", due, "ack in 3 min")
    assert badge(timedelta(minutes=14, seconds=30)).text == "ack in <1 min"
    assert badge(timedelta(minutes=15)).state == "breached"
    assert badge(timedelta(hours=3, minutes=15)) == SlaBadge(
        "acknowledge", "breached", due, "ack overdue 3 h"
    )
    # the case as the API returns it (JSON) gives the same badge
    assert badge(timedelta(minutes=12), case(api, case_id)).text == "ack in 3 min"

    api.patch(f"/api/v1/cases/CASE-{case_id}", json={"assignee": "alice"})
    due = created + timedelta(seconds=CRITICAL_RESOLVE)
    assert badge(timedelta(hours=1)) == SlaBadge("resolve", "ok", due, "resolve in 3 h")
    assert badge(timedelta(hours=3, minutes=20)) == SlaBadge(
        "resolve", "due_soon", due, "resolve in 40 min"
    )
    assert badge(timedelta(hours=4, minutes=40)) == SlaBadge(
        "resolve", "breached", due, "resolve overdue 40 min"
    )
    api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "resolved"})
    assert badge(timedelta(hours=5)) is None


def test_badge_in_days_and_without_targets(api):
    low = open_case(api, severity="low", assignee="alice")
    c = stored(api, low)
    assert sla_badge(c, api.runtime.sla_targets, c["created_at"] + timedelta(hours=1)).text == (
        "resolve in 6 d"
    )
    for severity in ("informational", "unknown"):
        c = stored(api, open_case(api, severity=severity))
        assert sla_badge(c, api.runtime.sla_targets, c["created_at"]) is None
    # no acknowledge target: an unacknowledged case shows its resolve deadline
    only_resolve = SlaTargets({}, {"high": 7200})
    c = stored(api, open_case(api, severity="high"))
    badge = sla_badge(c, only_resolve, c["created_at"] + timedelta(minutes=30))
    assert (badge.kind, badge.state, badge.text) == ("resolve", "ok", "resolve in 90 min")


def test_targets_come_from_the_settings():
    targets = SlaTargets.from_settings(
        Settings(sla={"acknowledge": {"critical": 60, "low": None}, "resolve": {"fatal": 3600}})
    )
    assert targets.acknowledge_seconds("critical") == 60
    assert targets.acknowledge_seconds("high") == 3600  # the default, kept
    assert targets.acknowledge_seconds("low") is None  # removed
    assert targets.acknowledge_seconds("informational") is None
    assert targets.resolve_seconds("fatal") == 3600
    assert targets.resolve_seconds("unknown") is None


# -- the watcher ---------------------------------------------------------------------------------


def test_watcher_records_each_missed_deadline_once(api):
    late_ack = open_case(api)  # 20 min old, nobody looked
    backdate(api, late_ack, 20 * 60)
    in_time = open_case(api)  # 20 min old, acknowledged after 5 min
    created = backdate(api, in_time, 20 * 60)
    set_times(api, in_time, acknowledged_at=created + timedelta(minutes=5))
    fresh = open_case(api)  # 5 min old
    backdate(api, fresh, 5 * 60)
    unresolved = open_case(api)  # 5 h old, acknowledged in time, still open
    created_unresolved = backdate(api, unresolved, 5 * 3600)
    set_times(api, unresolved, acknowledged_at=created_unresolved + timedelta(minutes=1))
    done = open_case(api, status="closed")  # opened closed 5 h ago: nothing due
    created_done = backdate(api, done, 5 * 3600)
    set_times(api, done, acknowledged_at=created_done, resolved_at=created_done)

    watcher = api.runtime.sla_watcher
    assert watcher.run_once() == 2
    assert watcher.run_once() == 0  # idempotent

    [event] = breach_events(api, late_ack)
    assert (event["field"], event["actor"]) == ("acknowledge", "casefold")
    assert event["detail"]["target_seconds"] == CRITICAL_ACK
    assert event["detail"]["severity"] == "critical"
    due = at(event["detail"]["due_at"])
    assert due == at(case(api, late_ack)["created_at"]) + timedelta(seconds=CRITICAL_ACK)
    [event] = breach_events(api, unresolved)
    assert event["field"] == "resolve"
    assert event["detail"]["target_seconds"] == CRITICAL_RESOLVE
    for quiet in (in_time, fresh, done):
        assert breach_events(api, quiet) == []
    assert stored_breaches(api, late_ack) == (due, None)


def stored_breaches(api, case_id: int) -> tuple[datetime | None, datetime | None]:
    with api.runtime.engine.connect() as conn:
        row = conn.execute(
            select(cases.c.sla_ack_breached_at, cases.c.sla_resolve_breached_at).where(
                cases.c.id == case_id
            )
        ).one()
    return tuple(queries.utc(v) for v in row)  # type: ignore[return-value]


def test_an_acknowledgement_after_the_deadline_between_two_passes_is_a_breach(api):
    watcher = api.runtime.sla_watcher
    watcher.run_once()  # a pass before the deadline passes
    case_id = open_case(api)
    backdate(api, case_id, 16 * 60)
    api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "in_progress"})
    assert watcher.run_once() == 1
    assert [e["field"] for e in breach_events(api, case_id)] == ["acknowledge"]
    assert watcher.run_once() == 0


def test_reopening_lets_the_resolve_deadline_breach_again(api):
    case_id = open_case(api, assignee="alice")
    created = backdate(api, case_id, 5 * 3600)
    set_times(api, case_id, acknowledged_at=created)  # assigned when it was opened
    watcher = api.runtime.sla_watcher
    assert watcher.run_once() == 1
    api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "resolved"})
    assert watcher.run_once() == 0
    api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "in_progress"})
    assert stored_breaches(api, case_id)[1] is None
    assert watcher.run_once() == 1
    assert [e["field"] for e in breach_events(api, case_id)] == ["resolve", "resolve"]


def test_the_watcher_works_in_batches(api):
    ids = [open_case(api, severity="high") for _ in range(5)]
    for case_id in ids:
        backdate(api, case_id, 2 * 3600)
    watcher = SlaWatcher(
        api.runtime.engine, api.runtime.writer, api.runtime.sla_targets, poll_seconds=0, batch=2
    )
    assert watcher.run_once() == 2
    assert watcher.drain() == 3
    assert all(len(breach_events(api, i)) == 1 for i in ids)


def test_the_watcher_runs_only_when_asked_to(api_factory):
    base = api_factory().runtime.settings
    assert base.sla_check_seconds == 30
    targets = SlaTargets.from_settings(base)
    on = SlaWatcher(None, None, targets, poll_seconds=30)  # type: ignore[arg-type]
    off = SlaWatcher(None, None, targets, poll_seconds=0)  # type: ignore[arg-type]
    none = SlaWatcher(None, None, SlaTargets({}, {}), poll_seconds=30)  # type: ignore[arg-type]
    assert (on.enabled(), off.enabled(), none.enabled()) == (True, False, False)


# -- statistics ----------------------------------------------------------------------------------


def test_sla_stats(api):
    since = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = since + timedelta(days=1)

    def make(severity: str, **after: float | None) -> None:
        case_id = open_case(api, severity=severity)
        values: dict[str, datetime | None] = {"created_at": t0}
        for name, seconds in after.items():
            values[name] = None if seconds is None else t0 + timedelta(seconds=seconds)
        set_times(api, case_id, **values)

    make("high", acknowledged_at=60, resolved_at=3600)
    make("high", acknowledged_at=180, sla_resolve_breached_at=86_400)
    make("high", sla_ack_breached_at=3600, sla_resolve_breached_at=86_400)
    make("critical", acknowledged_at=30, resolved_at=7200)
    make("low")
    old = open_case(api, severity="fatal")
    set_times(api, old, created_at=since - timedelta(seconds=1))

    with api.runtime.engine.connect() as conn:
        stats = sla_stats(conn, since)
    assert [s.severity for s in stats] == ["critical", "high", "low"]
    critical, high, low = stats
    assert (critical.cases, critical.acknowledged, critical.resolved) == (1, 1, 1)
    assert critical.mtta_seconds == pytest.approx(30, abs=0.01)
    assert critical.mttr_seconds == pytest.approx(7200, abs=0.01)
    assert (high.cases, high.acknowledged, high.resolved) == (3, 2, 1)
    assert high.mtta_seconds == pytest.approx(120, abs=0.01)
    assert high.mttr_seconds == pytest.approx(3600, abs=0.01)
    assert (high.ack_breaches, high.resolve_breaches) == (1, 2)
    assert (low.cases, low.acknowledged, low.mtta_seconds, low.mttr_seconds) == (1, 0, None, None)
    with api.runtime.engine.connect() as conn:
        assert sla_stats(conn, t0 + timedelta(seconds=1)) == []


# -- no outbox effect ----------------------------------------------------------------------------


def test_a_breach_causes_no_outbox_effect(api_factory, database_url):
    with JiraFake() as jira:
        synced = api_factory(
            sla_check_seconds=0,
            jira={
                "url": jira.url,
                "project": "SEC",
                "min_severity": "high",
                "reconcile_seconds": 0,
            },
            secrets={"jira": {"EMAIL": DEFAULT_EMAIL, "API_TOKEN": DEFAULT_TOKEN}},
        )
        tracked = open_case(synced)  # critical: has a Jira issue
        untracked = open_case(synced, severity="low")
        synced.runtime.sync.worker.drain()
        assert jira.count_created() == 1
        backdate(synced, tracked, 5 * 3600)
        backdate(synced, untracked, 8 * 86_400)

        def effects() -> int:
            with synced.runtime.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(outbox)).scalar_one()

        before = effects()
        assert synced.runtime.sla_watcher.run_once() == 4  # ack and resolve, each
        assert effects() == before
        with synced.runtime.engine.connect() as conn:
            kinds = conn.execute(
                select(case_events.c.kind).where(case_events.c.kind == "sla_breached")
            ).all()
        assert len(kinds) == 4
        synced.runtime.sync.worker.drain()
        assert jira.count_created() == 1
