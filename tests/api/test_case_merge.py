"""Merging cases through the API, on SQLite and PostgreSQL: the target takes the sources' alerts,
observables, comments, runs and tags; the sources are closed and say where they went; the
timeline tells; wrong requests change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.jira import DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake
from sqlalchemy import insert, select, update
from support.alerts import BASE_TIME, sshd_alert

from casefold.cases import service
from casefold.store.tables import alerts, case_observables, playbook_runs

URL = "/api/v1/alerts/wazuh"
A, B, C = "198.51.100.1", "198.51.100.2", "198.51.100.3"


def make_cases(api) -> dict[str, str]:
    """Three cases, by source address: A (2 alerts, medium), B (1, high, the earliest),
    C (3, medium, the latest). Every alert also carries the user `paco`."""
    api.post(
        URL,
        json=[
            sshd_alert(1, srcip=A, minutes=0),
            sshd_alert(2, srcip=A, minutes=1),
            sshd_alert(3, srcip=B, minutes=-30, level=12),
            sshd_alert(4, srcip=C, minutes=90),
            sshd_alert(5, srcip=C, minutes=95),
            sshd_alert(6, srcip=C, minutes=100),
        ],
    )
    api.fold()
    items = api.get("/api/v1/cases", params={"sort": "id"}).json()["items"]
    return {c["fold"]["key"]: c["ref"] for c in items}


def case(api, ref: str) -> dict[str, Any]:
    r = api.get(f"/api/v1/cases/{ref}")
    assert r.status_code == 200, r.text
    return r.json()


def timeline(api, ref: str) -> list[dict[str, Any]]:
    return api.get(f"/api/v1/cases/{ref}/timeline").json()["items"]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def case_id(ref: str) -> int:
    return int(ref.split("-")[1])


def merge(api, ref: str, body: Any, role: str = "analyst") -> Any:
    return api.post(f"/api/v1/cases/{ref}/merge", role=role, json=body)


def enrich(api, ref: str, value: str, verdict: str) -> None:
    api.runtime.writer.run(
        lambda conn: conn.execute(
            update(case_observables)
            .where(case_observables.c.case_id == case_id(ref), case_observables.c.value == value)
            .values(
                verdict=verdict,
                verdicts={"local": {"verdict": verdict}},
                enriched_at=datetime.now(UTC),
            )
        )
    )


def add_run(api, ref: str) -> int:
    def job(conn: Any) -> int:
        alert_id = conn.execute(
            select(alerts.c.id).where(alerts.c.case_id == case_id(ref)).limit(1)
        ).scalar_one()
        now = datetime.now(UTC)
        return conn.execute(
            insert(playbook_runs)
            .values(
                alert_id=alert_id,
                case_id=case_id(ref),
                playbook="triage",
                version="1",
                status="succeeded",
                created_at=now,
                not_before=now,
                steps=[],
            )
            .returning(playbook_runs.c.id)
        ).scalar_one()

    return api.runtime.writer.run(job)


def test_the_target_takes_everything(api):
    refs = make_cases(api)
    target, b, c = refs[A], refs[B], refs[C]
    api.post(f"/api/v1/cases/{b}/comments", json={"content": "same attacker as A"})
    api.patch(f"/api/v1/cases/{c}", json={"tags": ["T1110", "bruteforce", "vip"]})
    enrich(api, b, "paco", "malicious")
    run_id = add_run(api, c)

    r = merge(api, target, {"cases": [b, case_id(c)]})
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["ref"] == target
    assert merged["alert_count"] == 6
    assert merged["tags"] == ["T1110", "bruteforce", "vip"]
    assert merged["severity"] == "high"
    assert when(merged["first_seen"]) == BASE_TIME - timedelta(minutes=30)
    assert when(merged["last_seen"]) == BASE_TIME + timedelta(minutes=100)
    assert merged["status"] == "new" and merged["fold"]["open"] is True
    observables = {(o["type"], o["value"]): o for o in merged["observables"]}
    assert {k: o["alert_count"] for k, o in observables.items()} == {
        ("ip", A): 2,
        ("ip", B): 1,
        ("ip", C): 3,
        ("user", "paco"): 6,
    }
    paco = observables[("user", "paco")]
    assert paco["verdict"] == "malicious"  # the enriched row's verdicts win
    assert paco["first_seen"] == merged["first_seen"]
    assert paco["last_seen"] == merged["last_seen"]
    assert [(x["author"], x["content"]) for x in merged["comments"]] == [
        ("admin", "same attacker as A")
    ]
    assert r.headers["etag"] == f'"{merged["version"]}"'

    listed = api.get(f"/api/v1/cases/{target}/alerts").json()["items"]
    assert len(listed) == 6 and {a["case"] for a in listed} == {target}
    assert api.get(f"/api/v1/runs/{run_id}").json()["case"] == target

    events = timeline(api, target)
    [event] = [e for e in events if e["kind"] == "merged"]
    assert event["actor"] == "test-analyst"
    assert event["detail"]["cases"] == [b, c]
    assert event["detail"]["alerts"] == 4
    assert any(e["kind"] == "tag_added" and e["new"] == "vip" for e in events)
    assert any(
        e["kind"] == "severity_changed" and (e["old"], e["new"]) == ("medium", "high")
        for e in events
    )

    for ref in (b, c):
        source = case(api, ref)
        assert source["status"] == "closed"
        assert source["fields"]["merged_into"] == target
        assert source["alert_count"] == 0
        assert source["observables"] == [] and source["comments"] == []
        assert source["fold"]["open"] is False
        assert source["resolved_at"] is not None
        assert api.get(f"/api/v1/cases/{ref}/alerts").json()["items"] == []
        kinds = [e["kind"] for e in timeline(api, ref)]
        assert kinds[-3:] == ["merged_into", "case_closed", "fields_changed"]
        [into] = [e for e in timeline(api, ref) if e["kind"] == "merged_into"]
        assert into["detail"] == {"case": target}
        assert into["actor"] == "test-analyst"


def test_the_target_keeps_its_own_verdicts(api):
    refs = make_cases(api)
    enrich(api, refs[A], "paco", "benign")
    enrich(api, refs[B], "paco", "malicious")
    merged = merge(api, refs[A], {"cases": [refs[B]]}).json()
    [paco] = [o for o in merged["observables"] if o["value"] == "paco"]
    assert (paco["verdict"], paco["alert_count"]) == ("benign", 3)


def test_closed_and_already_merged_sources_can_be_merged(api):
    refs = make_cases(api)
    api.patch(f"/api/v1/cases/{refs[B]}", json={"status": "closed"})
    assert merge(api, refs[C], {"cases": [refs[B]]}).json()["alert_count"] == 4
    # B, merged into C, is merged again into A: nothing is left to move, it points at A now
    merged = merge(api, refs[A], {"cases": [refs[B], refs[B]]})
    assert merged.status_code == 200
    assert merged.json()["alert_count"] == 2
    assert case(api, refs[B])["fields"]["merged_into"] == refs[A]
    assert case(api, refs[C])["alert_count"] == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cases": []}, "cases"),
        ({}, "cases"),
        ({"cases": "CASE-2"}, "cases"),
        ({"cases": [f"CASE-{i}" for i in range(2, 103)]}, "cases"),
        ({"cases": ["CASE-2", "nope"]}, "cases[1]"),
        ({"cases": [True]}, "cases[0]"),
        ({"cases": [{"id": 2}]}, "cases[0]"),
        ({"cases": ["CASE-2", "CASE-1"]}, "cases[1]"),  # into itself
        ({"cases": [1]}, "cases[0]"),
        ({"cases": ["CASE-2"], "extra": 1}, "extra"),
    ],
)
def test_bad_requests_are_422_naming_the_field(api, body, field):
    refs = make_cases(api)
    assert refs[A] == "CASE-1"
    r = merge(api, "CASE-1", body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert case(api, "CASE-2")["alert_count"] == 1


def test_missing_cases_are_404_and_a_closed_target_409(api):
    refs = make_cases(api)
    for ref, body in [
        (refs[A], {"cases": [refs[B], "CASE-999"]}),
        ("CASE-999", {"cases": [refs[B]]}),
        ("nonsense", {"cases": [refs[B]]}),
    ]:
        r = merge(api, ref, body)
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "not_found"
    for status in ("closed", "resolved"):
        api.patch(f"/api/v1/cases/{refs[A]}", json={"status": status})
        r = merge(api, refs[A], {"cases": [refs[B]]})
        assert r.status_code == 409
        assert r.json()["error"] == "conflict"
        assert f"reopen {refs[A]} first" in r.json()["message"]
    # nothing moved
    assert case(api, refs[B])["alert_count"] == 1
    assert case(api, refs[B])["status"] == "new"
    assert not any(e["kind"].startswith("merged") for e in timeline(api, refs[B]))


def test_a_viewer_may_not_merge(api):
    refs = make_cases(api)
    r = merge(api, refs[A], {"cases": [refs[B]]}, role="viewer")
    assert r.status_code == 403
    assert case(api, refs[B])["status"] == "new"


def test_new_alerts_of_a_source_open_a_new_case(api):
    """The sources' fold slots are released: their next alert opens a case of its own, while
    the target keeps its own slot."""
    refs = make_cases(api)
    merge(api, refs[A], {"cases": [refs[B]]})
    api.post(URL, json=[sshd_alert(7, srcip=B, minutes=2), sshd_alert(8, srcip=A, minutes=3)])
    api.fold()
    items = api.get("/api/v1/cases", params={"sort": "id"}).json()["items"]
    assert len(items) == 4
    newest = items[-1]
    assert newest["fold"] == {"rule": "auth-bruteforce", "key": B, "open": True}
    assert newest["alert_count"] == 1
    assert case(api, refs[A])["alert_count"] == 4  # 2 + B's 1 + its own new one
    assert case(api, refs[B])["alert_count"] == 0


def test_merging_closes_the_sources_jira_issue(api_factory):
    with JiraFake() as jira:
        synced = api_factory(
            sla_check_seconds=0,
            jira={"url": jira.url, "project": "SEC", "reconcile_seconds": 0},
            secrets={"jira": {"EMAIL": DEFAULT_EMAIL, "API_TOKEN": DEFAULT_TOKEN}},
        )

        def open_high(summary: str) -> int:
            return synced.runtime.writer.run(
                lambda conn: service.open_case(conn, summary=summary, severity="high")
            )

        target, source = open_high("Beacon"), open_high("Beacon again")
        synced.runtime.sync.worker.drain()
        issues = {
            case: next(i for i in jira.issues.values() if f"casefold-case-{case}" in i.labels)
            for case in (target, source)
        }
        r = merge(synced, f"CASE-{target}", {"cases": [f"CASE-{source}"]}, role="admin")
        assert r.status_code == 200, r.text
        synced.runtime.sync.worker.drain()
        assert jira.issues[issues[source].key].status == "Done"
        assert jira.issues[issues[target].key].status != "Done"
        assert jira.count_created() == 2
