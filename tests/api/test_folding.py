"""Alerts fold into cases: one case per rule and key inside the window, with the reason recorded."""

from __future__ import annotations

from pathlib import Path

from support.alerts import fim_alert, sample, sshd_alert

from casefold.sources.observables import MAX_VALUE_LEN
from casefold.store.tables import case_observables

URL = "/api/v1/alerts/wazuh"


def cases(api, **params):
    return api.get("/api/v1/cases", params={"limit": 500, **params}).json()["items"]


def test_a_brute_force_from_one_address_is_one_case(api):
    # Different sshd rules (5710, 5712, 5720) from one address, over 40 minutes.
    alerts = [
        sshd_alert(i, minutes=i * 2, rule_id=("5710", "5712", "5720")[i % 3]) for i in range(20)
    ]
    api.post(URL, json=alerts)
    api.fold()
    found = cases(api)
    assert len(found) == 1
    case = found[0]
    assert case["alert_count"] == 20
    assert case["summary"] == "Authentication attack from 203.0.113.7"
    assert case["fold"] == {"rule": "auth-bruteforce", "key": "203.0.113.7", "open": True}
    assert case["first_seen"].startswith("2026-11-20T10:00:00")
    assert case["last_seen"].startswith("2026-11-20T10:38:00")
    ips = [
        o
        for o in api.get(f"/api/v1/cases/{case['ref']}").json()["observables"]
        if o["type"] == "ip"
    ]
    assert ips == [{**ips[0], "value": "203.0.113.7", "public": False, "alert_count": 20}]


def test_an_observable_seen_in_later_passes_keeps_its_earliest_and_latest_sighting(api):
    # Three fold passes, out of order: each adds to the stored count and widens the sighting.
    for minutes in (20, 5, 40):
        api.post(
            URL,
            json=[
                sshd_alert(minutes, minutes=minutes),
                sshd_alert(100 + minutes, minutes=minutes + 1),
            ],
        )
        api.fold()
    (case,) = cases(api)
    (ip,) = [
        o
        for o in api.get(f"/api/v1/cases/{case['ref']}").json()["observables"]
        if o["type"] == "ip"
    ]
    assert ip["alert_count"] == 6
    assert ip["first_seen"].startswith("2026-11-20T10:05:00")
    assert ip["last_seen"].startswith("2026-11-20T10:41:00")


def test_each_join_says_why_on_the_timeline(api):
    api.post(URL, json=[sshd_alert(0), sshd_alert(1, minutes=7), sshd_alert(2, minutes=14)])
    api.fold()
    ref = cases(api)[0]["ref"]
    events = api.get(f"/api/v1/cases/{ref}/timeline").json()["items"]
    reasons = [e["detail"]["reason"] for e in events if e["kind"] == "alert_added"]
    assert reasons == [
        "opened by rule auth-bruteforce, key 203.0.113.7",
        "joined by rule auth-bruteforce, key 203.0.113.7, 2nd alert in 7 min",
        "joined by rule auth-bruteforce, key 203.0.113.7, 3rd alert in 14 min",
    ]
    assert events[0]["kind"] == "case_created"


def test_two_addresses_make_two_cases(api):
    api.post(URL, json=[sshd_alert(0, srcip="198.51.100.1"), sshd_alert(1, srcip="198.51.100.2")])
    api.fold()
    assert sorted(c["fold"]["key"] for c in cases(api)) == ["198.51.100.1", "198.51.100.2"]


def test_severity_rises_to_the_highest_alert(api):
    api.post(URL, json=sshd_alert(0, level=5))
    api.fold()
    assert cases(api)[0]["severity"] == "low"
    api.post(URL, json=sshd_alert(1, level=12, minutes=1))
    api.fold()
    case = cases(api)[0]
    assert case["severity"] == "high"
    events = api.get(f"/api/v1/cases/{case['ref']}/timeline").json()["items"]
    change = [e for e in events if e["kind"] == "severity_changed"]
    assert change and change[-1]["old"] == "low" and change[-1]["new"] == "high"
    # a lower alert never lowers it
    api.post(URL, json=sshd_alert(2, level=3, minutes=2))
    api.fold()
    assert cases(api)[0]["severity"] == "high"


def test_an_alert_outside_the_window_opens_a_new_case(api):
    # auth-bruteforce has a 6 h sliding window.
    api.post(URL, json=[sshd_alert(0), sshd_alert(1, minutes=60 * 5)])
    api.post(URL, json=sshd_alert(2, minutes=60 * 12))
    api.fold()
    found = sorted(cases(api), key=lambda c: c["id"])
    assert [c["alert_count"] for c in found] == [2, 1]
    assert [c["fold"]["open"] for c in found] == [False, True]
    closed = api.get(f"/api/v1/cases/{found[0]['ref']}/timeline").json()["items"]
    assert any(e["kind"] == "fold_closed" for e in closed)


def test_a_closed_case_takes_no_more_alerts(api):
    api.post(URL, json=sshd_alert(0))
    api.fold()
    ref = cases(api)[0]["ref"]
    assert api.patch(f"/api/v1/cases/{ref}", json={"status": "closed"}).status_code == 200
    api.post(URL, json=sshd_alert(1, minutes=1))
    api.fold()
    found = sorted(cases(api), key=lambda c: c["id"])
    assert len(found) == 2 and found[0]["alert_count"] == 1 and found[1]["alert_count"] == 1


def test_maximum_size_opens_a_new_case(tmp_path, api_factory):
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "rules:\n  - name: small\n    key: [data.srcip]\n    window: 1h\n    max_alerts: 3\n"
    )
    api = api_factory(folding_rules=rules)
    api.post(URL, json=[sshd_alert(i, minutes=i) for i in range(7)])
    api.fold()
    assert sorted(c["alert_count"] for c in cases(api)) == [1, 3, 3]


def test_samples_fold_into_sensible_cases(api, samples_dir: Path):
    names = sorted(p.name for p in samples_dir.glob("*.json") if "active_response" not in p.name)
    api.post(URL, json=[sample(n) for n in names])
    api.fold()
    by_rule = {}
    for c in cases(api):
        by_rule.setdefault(c["fold"]["rule"], []).append(c)
    assert {c["fold"]["key"] for c in by_rule["auth-bruteforce"]} == {"172.17.1.1"}
    assert by_rule["crowdsec-attacker"][0]["fold"]["key"] == "10.10.10.10"
    assert by_rule["file-integrity"][0]["fold"]["key"] == "010/554"
    assert "vulnerability" in by_rule
    # every sample alert is in exactly one case
    assert sum(c["alert_count"] for c in cases(api)) == len(names)
    pending = api.get("/api/v1/alerts", params={"state": "pending"}).json()["items"]
    assert pending == []


def test_fim_alerts_group_per_agent_and_rule(api):
    api.post(
        URL,
        json=[fim_alert(i, agent_id="010") for i in range(3)]
        + [fim_alert(i + 10, agent_id="011") for i in range(2)],
    )
    api.fold()
    assert sorted((c["fold"]["key"], c["alert_count"]) for c in cases(api)) == [
        ("010/554", 3),
        ("011/554", 2),
    ]


def test_what_an_alert_says_never_stops_it_folding(tmp_path, api_factory):
    """Groups and MITRE ids a case cannot hold as tags, a key past the store's length and an
    observable too long to keep are left out or shortened; the alerts still fold."""
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "rules:\n  - name: by-source\n    key: [data.srcip]\n    tags: [sshd]\n"
        "    tag_groups: true\n"
    )
    api = api_factory(folding_rules=rules)
    alerts = []
    for n, end in enumerate("ab"):
        alert = sshd_alert(n, srcip="x" * 1000 + end)
        alert["rule"]["groups"] += ["g" * 201, "   ", "authentication_failed"]
        alert["rule"]["mitre"]["id"] = ["T" * 300, "T1110"]
        alert["data"]["srcuser"] = "u" * 3000
        alerts.append(alert)
    assert api.post(URL, json=alerts).status_code == 202
    api.fold()
    assert api.get("/api/v1/alerts", params={"state": "pending"}).json()["items"] == []
    found = cases(api)
    keys = [c["fold"]["key"] for c in found]
    assert len(found) == 2 and len(set(keys)) == 2  # ends that differ still make two cases
    assert all(len(k) == 600 and k.startswith("x" * 500) for k in keys)
    for case in found:
        assert case["alert_count"] == 1
        assert set(case["tags"]) == {"sshd", "authentication_failed", "T1110"} | set(
            sshd_alert(0)["rule"]["groups"]
        )
        detail = api.get(f"/api/v1/cases/{case['ref']}").json()
        assert all(len(o["value"]) <= MAX_VALUE_LEN for o in detail["observables"])
    assert MAX_VALUE_LEN == case_observables.c.value.type.length
