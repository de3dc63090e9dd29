"""Dashboard counts aggregated in SQL: windows and buckets, bands, top rules, agents, MITRE
techniques and cases by status, on both backends; the same numbers as `casefold report`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.alerts import BASE_TIME, SAMPLES, fim_alert, sample, sshd_alert, wazuh_time

from casefold.config import Settings
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import receive
from casefold.report import report_from_store
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.stats import (
    cases_by_status,
    count_alerts,
    dashboard_stats,
    top_agents,
    top_rules,
    top_techniques,
    window_for,
)
from casefold.store.tables import CASE_STATUSES, cases

NOW = BASE_TIME + timedelta(minutes=30)  # 2026-11-20 10:30 UTC
AR_ENVELOPE = "active_response_stdin_add_firewall_drop_31168.json"


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    rt.start(folding=False)
    yield rt
    rt.stop()


def put(rt: Runtime, docs: list[dict[str, Any]]) -> None:
    result = receive(
        Parsed([Item(i, d) for i, d in enumerate(docs)], single=False), parse_wazuh_alert, rt.writer
    )
    assert result.accepted == len(docs), result


def at(doc: dict[str, Any], when: datetime) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["timestamp"] = wazuh_time(when)
    return doc


def with_mitre(doc: dict[str, Any], ids: list[str], names: list[str]) -> dict[str, Any]:
    doc["rule"]["mitre"] = {"id": ids, "technique": names, "tactic": ["Initial Access"]}
    return doc


def test_windows_end_with_the_bucket_holding_now():
    day = window_for(24, NOW)
    assert day.since == datetime(2026, 11, 19, 11, tzinfo=UTC)
    assert day.until == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert len(day.buckets) == 24 and day.buckets[-1] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    week = window_for(168, NOW)
    assert (week.since, week.until) == (
        datetime(2026, 11, 14, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    assert len(week.buckets) == 7
    month = window_for(720, NOW.astimezone())  # any zone in, UTC buckets out
    assert len(month.buckets) == 30 and month.buckets[0] == datetime(2026, 10, 22, tzinfo=UTC)
    for bad in (0, 1, 23, 48, 10_000):
        with pytest.raises(ValueError):
            window_for(bad, NOW)


def test_alerts_per_bucket_by_band(store: Runtime):
    put(
        store,
        [
            sshd_alert(0, level=3),  # 10:00, low
            sshd_alert(1, minutes=5, level=8),  # 10:05, medium
            sshd_alert(2, minutes=-1, level=12),  # 09:59, high
            sshd_alert(3, minutes=-90, level=15),  # 08:30, critical
            sshd_alert(4, minutes=-90, level=16),  # 08:30, critical
            sshd_alert(5, minutes=-60 * 24, level=10),  # yesterday 10:00: before the window
            sshd_alert(6, minutes=45, level=10),  # 10:45: after now, same bucket (clock skew)
            sshd_alert(7, minutes=61, level=10),  # 11:01: after the window
        ],
    )
    w = window_for(24, NOW)
    with store.engine.connect() as conn:
        buckets = count_alerts(conn, w).buckets
        daily = count_alerts(conn, window_for(168, NOW)).buckets
    assert [b.start for b in buckets] == w.buckets
    by_start = {b.start.hour: b.bands for b in buckets if b.total}
    assert by_start == {
        8: {"low": 0, "medium": 0, "high": 0, "critical": 2},
        9: {"low": 0, "medium": 0, "high": 1, "critical": 0},
        10: {"low": 1, "medium": 2, "high": 0, "critical": 0},
    }
    assert [b.total for b in daily][-2:] == [1, 7]  # yesterday's alert, today's seven


def test_top_rules_agents_and_techniques(store: Runtime):
    web = {"id": "007", "name": "web-01"}
    docs = [sshd_alert(i, minutes=-i) for i in range(3)]  # 5712 on localhost.localdomain
    docs += [fim_alert(i, agent_id="010", minutes=-10 - i) for i in range(2)]  # 554
    docs.append(
        with_mitre(
            sshd_alert(9, rule_id="31108", minutes=-20),
            ["T1190", "T1190", "T1110"],  # listed twice on one alert: counted once
            [
                "Exploit Public-Facing Application",
                "Exploit Public-Facing Application",
                "Brute Force",
            ],
        )
    )
    docs[-1]["agent"] = web
    docs[-1]["rule"]["description"] = "Web attack"
    docs.append(with_mitre(sshd_alert(10, rule_id="31108", minutes=-21), ["T1190"], []))
    docs[-1]["agent"] = web
    docs[-1]["rule"]["description"] = "Web attack"
    nobody = sshd_alert(11, minutes=-22)
    del nobody["agent"]
    del nobody["rule"]["id"]
    docs.append(nobody)
    docs.append(sshd_alert(12, minutes=-60 * 48))  # outside the day
    put(store, docs)
    w = window_for(24, NOW)
    with store.engine.connect() as conn:
        counts = count_alerts(conn, w)
        rules = top_rules(conn, counts)
        agents = top_agents(counts)
        techniques = top_techniques(conn, w)
        two = top_rules(conn, counts, limit=2)
    assert [(r.key, r.count) for r in rules] == [("5712", 3), ("31108", 2), ("554", 2), ("-", 1)]
    assert rules[1].label == "Web attack"
    assert rules[0].label.startswith("sshd: brute force")
    assert len(two) == 2
    # Most alerts first, then by name: the same order as `casefold report`.
    assert [(a.key, a.label, a.count) for a in agents] == [
        ("localhost.localdomain", "000", 3),
        ("Ubuntu", "010", 2),
        ("web-01", "007", 2),
        ("-", "-", 1),
    ]
    got = [(t.key, t.label, t.count) for t in techniques]
    # sshd 5712 carries T1110 "Brute Force"; the second T1190 alert has no names, the first has.
    assert got == [("T1110", "Brute Force", 5), ("T1190", "Exploit Public-Facing Application", 2)]


def test_a_technique_without_a_matching_name_list_has_no_name(store: Runtime):
    put(store, [with_mitre(sshd_alert(0), ["T1059", "T1203"], ["only one name"])])
    with store.engine.connect() as conn:
        got = top_techniques(conn, window_for(24, NOW))
    assert [(t.key, t.label, t.count) for t in got] == [("T1059", "", 1), ("T1203", "", 1)]


def test_cases_by_status_lists_every_status(store: Runtime):
    with store.engine.connect() as conn:
        assert cases_by_status(conn) == dict.fromkeys(CASE_STATUSES, 0)
    put(store, [sshd_alert(i, srcip=f"198.51.100.{i + 1}") for i in range(3)])
    store.folding.drain()

    def close_one(conn: Any) -> None:
        first = conn.execute(cases.select().order_by(cases.c.id).limit(1)).first()
        conn.execute(cases.update().where(cases.c.id == first.id).values(status="closed"))

    store.writer.run(close_one)
    with store.engine.connect() as conn:
        got = cases_by_status(conn)
    assert list(got) == list(CASE_STATUSES)
    assert got["new"] == 2 and got["closed"] == 1 and sum(got.values()) == 3


def test_the_dashboard_counts_what_casefold_report_counts(store: Runtime):
    # Every real sample, moved into the window, plus generated alerts across the day.
    docs = [
        at(sample(p.name), NOW - timedelta(minutes=3 + i))
        for i, p in enumerate(sorted(SAMPLES.glob("*.json")))
        if p.name != AR_ENVELOPE
    ]
    docs += [sshd_alert(100 + i, minutes=-37 * i, level=3 + i % 14) for i in range(30)]
    docs += [sshd_alert(200, minutes=-60 * 30)]  # outside the window
    put(store, docs)
    w = window_for(24, NOW)
    stats = dashboard_stats(store.engine.connect, 24, now=NOW)
    with store.engine.connect() as conn:
        report = report_from_store(conn, since=w.since, until=w.until).to_dict(top=10)
    assert stats.total_alerts == report["total"] == len(docs) - 1
    assert stats.band_totals == report["by_band"]
    assert [(r.key, r.count) for r in stats.top_rules] == [
        (r["rule_id"], r["count"]) for r in report["top_rules"]
    ]
    assert [(a.key, a.label, a.count) for a in stats.top_agents] == [
        (a["name"], a["id"], a["count"]) for a in report["top_agents"]
    ]
    assert [(t.key, t.count) for t in stats.top_techniques] == [
        (t["id"], t["count"]) for t in report["top_techniques"]
    ]
    assert {t.key: t.label for t in stats.top_techniques if t.label} == {
        t["id"]: t["name"] for t in report["top_techniques"] if t["name"]
    }
    assert stats.computed_at == NOW and stats.window == w
