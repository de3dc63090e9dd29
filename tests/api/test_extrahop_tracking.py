"""ExtraHop detection tracking (seed 001) against the ExtraHop fake: a pushed detection becomes a
case; the case writes its ticket id, status, assignee and resolution back onto the detection;
with Jira on, the ticket id is the issue's key."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.extrahop import DEFAULT_API_KEY, ExtraHopFake, example_detection
from fakes.jira import DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake

URL = "/api/v1/alerts/extrahop"


def pushed(detection: dict[str, Any], event: str = "DETECTION_CREATE") -> dict[str, Any]:
    """The payload the shipped trigger posts."""
    return {"event": event, "sent_at": detection["update_time"], "detection": detection}


@pytest.fixture
def extrahop():
    with ExtraHopFake() as fake:
        yield fake


def settings(fake: ExtraHopFake, **kw: Any) -> dict[str, Any]:
    secrets = {"extrahop": {"API_KEY": DEFAULT_API_KEY}, **kw.pop("secrets", {})}
    return {"extrahop": {"url": fake.url, **kw.pop("poll", {})}, "secrets": secrets, **kw}


def process(api) -> None:
    api.fold()
    api.runtime.sync.worker.drain()


def the_case(api) -> dict[str, Any]:
    [case] = api.get("/api/v1/cases").json()["items"]
    return api.get(f"/api/v1/cases/{case['ref']}").json()


def test_a_detection_becomes_a_case_and_the_case_writes_back(api_factory, extrahop):
    api = api_factory(**settings(extrahop))
    detection = example_detection(ticket_id=None, status=None, assignee=None)
    r = api.post(URL, json=pushed(detection))
    assert r.status_code == 202 and r.json()["accepted"] == 1
    process(api)
    case = the_case(api)
    assert case["severity"] == "medium"  # risk 60
    assert "sec.attack" in case["tags"] and "T1571" in case["tags"]
    assert any(o["value"] == "1.2.3.4" for o in case["observables"])
    assert case["links"] == [{"target": "extrahop", "id": str(detection["id"]), "url": None}]
    assert extrahop.patches[-1] == (
        detection["id"],
        {"ticket_id": case["ref"], "status": "new"},
    )
    api.patch(f"/api/v1/cases/{case['ref']}", json={"status": "in_progress", "assignee": "alice"})
    process(api)
    assert extrahop.detection(detection["id"])["status"] == "in_progress"
    assert extrahop.detection(detection["id"])["assignee"] == "alice"
    api.patch(f"/api/v1/cases/{case['ref']}", json={"status": "resolved"})
    process(api)
    closed = extrahop.detection(detection["id"])
    assert (closed["status"], closed["resolution"]) == ("closed", "action_taken")
    api.patch(f"/api/v1/cases/{case['ref']}", json={"status": "closed"})
    process(api)
    assert extrahop.detection(detection["id"])["resolution"] == "no_action_taken"


def test_updates_of_one_detection_join_its_case(api_factory, extrahop):
    api = api_factory(**settings(extrahop))
    detection = example_detection()
    api.post(URL, json=pushed(detection))
    later = {**detection, "update_time": detection["update_time"] + 60_000, "risk_score": 95}
    api.post(URL, json=pushed(later, "DETECTION_UPDATE"))
    again = api.post(URL, json=pushed(later, "DETECTION_UPDATE"))
    assert again.json()["duplicates"] == 1  # the same state, sent twice
    process(api)
    case = the_case(api)
    assert case["alert_count"] == 2 and case["severity"] == "critical"


def test_with_jira_the_ticket_id_is_the_issue_key(api_factory, extrahop):
    with JiraFake() as jira:
        api = api_factory(
            **settings(
                extrahop,
                jira={
                    "url": jira.url,
                    "project": "SEC",
                    "min_severity": "medium",
                    "reconcile_seconds": 0,
                },
                secrets={"jira": {"EMAIL": DEFAULT_EMAIL, "API_TOKEN": DEFAULT_TOKEN}},
            )
        )
        detection = example_detection(ticket_id=None)
        api.post(URL, json=pushed(detection))
        process(api)
        [issue] = jira.issues.values()
        assert extrahop.detection(detection["id"])["ticket_id"] == issue.key
        case = the_case(api)
        assert {link["target"] for link in case["links"]} == {"jira", "extrahop"}


def test_the_intake_needs_an_ingest_token_and_names_bad_fields(api_factory, extrahop):
    api = api_factory(**settings(extrahop))
    assert api.client.post(URL, json=pushed(example_detection())).status_code == 401
    bad = api.post(URL, json={"event": "DETECTION_CREATE", "detection": {"id": "x"}})
    assert bad.status_code == 422 and "detection" in (bad.json().get("field") or "")


def test_the_poller_picks_up_what_the_trigger_missed(api_factory, extrahop):
    import time

    now_ms = int(time.time() * 1000)
    missed = extrahop.add_detection(
        id=4242,
        title="Kerberos Brute Force",
        mod_time=now_ms,
        update_time=now_ms,
        start_time=now_ms - 60_000,
    )
    api = api_factory(**settings(extrahop, poll={"poll_seconds": 0.1}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = api.get("/api/v1/alerts", params={"source": "extrahop"}).json()["items"]
        if found:
            break
        time.sleep(0.05)
    assert [a["source_id"].split("@")[0] for a in found] == [str(missed["id"])]
    # pushed afterwards, the same version is a duplicate, not a second alert
    again = api.post(URL, json=pushed(extrahop.detection(4242)))
    assert again.json()["duplicates"] == 1


def test_the_risk_map_is_a_setting(api_factory, extrahop):
    api = api_factory(**settings(extrahop, poll={"risk_levels": {0: 3, 50: 15}}))
    api.post(URL, json=pushed(example_detection(risk_score=60)))
    process(api)
    assert the_case(api)["severity"] == "critical"


def test_a_bad_risk_map_stops_start_up_naming_it(tmp_path):
    from casefold.config import Settings
    from casefold.errors import ConfigError
    from casefold.runtime import Runtime

    with pytest.raises(ConfigError) as err:
        Runtime(Settings(data_dir=tmp_path, extrahop={"risk_levels": {10: 5}}))
    assert "extrahop.risk_levels" in str(err.value)
