"""The article's workflow (seed 000), shipped as wazuh-crowdsec-ticketing.yml, run as written
against CrowdSec alerts forwarded by Wazuh and a fake CrowdSec CTI on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes.crowdsec import CrowdSecFake
from support.alerts import crowdsec_alert, sample

URL = "/api/v1/alerts/wazuh"
KEY = "test-cti-key"


@pytest.fixture
def crowdsec() -> Iterator[CrowdSecFake]:
    fake = CrowdSecFake(
        {"1.2.3.4": "malicious", "5.6.7.8": "suspicious", "9.9.9.9": "known", "8.8.4.4": "benign"},
        api_keys=[KEY],
    )
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def pb_api(api_factory, crowdsec):
    return api_factory(
        bundled_playbooks=["wazuh-crowdsec-ticketing"],
        threat_intel={"crowdsec": {"url": crowdsec.url}},
        secrets={"crowdsec_cti": {"CTI_API_KEY": KEY}},
    )


def process(api) -> None:
    api.fold()
    api.runtime.playbooks.drain()


def the_case(api, ip: str) -> dict[str, Any]:
    found = [
        c
        for c in api.get("/api/v1/cases", params={"limit": 500}).json()["items"]
        if c["fold"]["key"] == ip
    ]
    assert len(found) == 1, found
    return api.get(f"/api/v1/cases/{found[0]['ref']}").json()


@pytest.mark.parametrize(
    ("ip", "reputation_priority"),
    [
        ("1.2.3.4", "critical"),
        ("5.6.7.8", "high"),
        ("9.9.9.9", "medium"),
        ("4.4.4.4", "low"),  # CrowdSec answers 404: reputation unknown → low
        ("8.8.4.4", "unknown"),
    ],  # benign is outside the article's table → unknown
)
def test_priority_follows_the_reputation(pb_api, ip, reputation_priority):
    pb_api.post(URL, json=crowdsec_alert(1, ip, level=10))
    process(pb_api)
    case = the_case(pb_api, ip)
    assert case["priority"] == reputation_priority
    assert case["summary"] == "web-frontend-01"  # ${{ TRIGGER.data.agent.name }}
    assert case["description"] == "crowdsecurity/ssh-bf"  # the scenario
    assert case["status"] == "new"


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (16, "fatal"),
        (15, "critical"),
        (13, "high"),
        (12, "high"),
        (11, "medium"),
        (4, "medium"),
        (3, "low"),
        (0, "low"),
    ],
)
def test_severity_follows_the_rule_level(pb_api, level, severity):
    pb_api.post(URL, json=crowdsec_alert(1, "1.2.3.4", level=level))
    process(pb_api)
    assert the_case(pb_api, "1.2.3.4")["severity"] == severity


def test_comment_lists_the_event_metadata(pb_api):
    pb_api.post(URL, json=crowdsec_alert(1, "1.2.3.4", level=12))
    process(pb_api)
    comments = the_case(pb_api, "1.2.3.4")["comments"]
    assert [c["content"] for c in comments] == [
        "ASNNumber: 15169\n- ASNOrg: Google LLC\n- IsInEU: false\n- IsoCode: US\n"
        "- service: ssh\n- target_user: pascal"
    ]
    assert comments[0]["author"] == "playbook:wazuh-crowdsec-ticketing"


def test_every_step_is_recorded(pb_api, crowdsec):
    alert_id = pb_api.post(URL, json=crowdsec_alert(1, "1.2.3.4", level=12)).json()["results"][0][
        "id"
    ]
    process(pb_api)
    runs = pb_api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"]
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "succeeded" and run["playbook"] == "wazuh-crowdsec-ticketing"
    steps = {s["ref"]: s for s in run["steps"]}
    assert list(steps) == [
        "stock_groups",
        "stock_ip",
        "lookup_ip_address",
        "create_case",
        "stock_reputation",
        "stock_level",
        "recup_case_id",
        "update_case",
        "map",
        "create_comment",
    ]
    assert all(s["status"] == "succeeded" for s in steps.values())
    assert steps["stock_ip"]["result"] == "1.2.3.4"
    assert steps["lookup_ip_address"]["result"]["data"]["reputation"] == "malicious"
    assert steps["update_case"]["input"]["severity"] == "high"
    assert crowdsec.calls_for("1.2.3.4") == 1
    # the secret never appears in what was recorded
    assert KEY not in str(run)
    timeline = pb_api.get(f"/api/v1/cases/{run['case']}/timeline").json()["items"]
    assert any(
        e["kind"] == "playbook_run" and e["detail"]["status"] == "succeeded" for e in timeline
    )


def test_a_flood_from_one_ip_is_one_case(pb_api):
    pb_api.post(URL, json=[crowdsec_alert(i, "1.2.3.4", level=12) for i in range(5)])
    process(pb_api)
    case = the_case(pb_api, "1.2.3.4")
    assert case["alert_count"] == 5
    assert len(case["comments"]) == 5  # every run comments on the one case


def test_non_crowdsec_alerts_do_not_trigger_it(pb_api):
    alert_id = pb_api.post(URL, json=sample("sshd_bruteforce_nonexistent_user_5712.json")).json()[
        "results"
    ][0]["id"]
    process(pb_api)
    assert pb_api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"] == []


def test_a_crowdsec_outage_fails_the_run_visibly_and_retry_finishes_it(pb_api, crowdsec):
    crowdsec.api_keys = {"another-key"}  # CrowdSec now answers 403
    alert_id = pb_api.post(URL, json=crowdsec_alert(1, "1.2.3.4", level=12)).json()["results"][0][
        "id"
    ]
    process(pb_api)
    run = pb_api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"][0]
    assert run["status"] == "failed"
    steps = {s["ref"]: s for s in run["steps"]}
    assert steps["lookup_ip_address"]["status"] == "failed"
    assert "403" in steps["lookup_ip_address"]["error"]
    assert steps["create_case"]["status"] == "skipped"
    crowdsec.api_keys = {KEY}
    assert pb_api.post(f"/api/v1/runs/{run['id']}/retry").status_code == 202
    pb_api.runtime.playbooks.drain()
    again = pb_api.get(f"/api/v1/runs/{run['id']}").json()
    assert again["status"] == "succeeded"
    assert the_case(pb_api, "1.2.3.4")["priority"] == "critical"


def test_lookups_are_cached_across_alerts(pb_api, crowdsec):
    pb_api.post(
        URL,
        json=[crowdsec_alert(i, ip, level=12) for i, ip in enumerate(["1.2.3.4", "4.4.4.4"] * 5)],
    )
    process(pb_api)
    # one call per address: the second answer of each came from the cache; the 404 too
    assert crowdsec.calls_for("1.2.3.4") == 1 and crowdsec.calls_for("4.4.4.4") == 1
    run = pb_api.get("/api/v1/alerts/3/runs").json()["items"][0]
    lookup = {s["ref"]: s for s in run["steps"]}["lookup_ip_address"]["result"]
    assert lookup["provenance"]["provider"] == "crowdsec"
    assert lookup["provenance"]["from_cache"] is True
    assert lookup["data"]["reputation"] == "malicious"
