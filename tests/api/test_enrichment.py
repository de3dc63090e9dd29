"""Threat intel through a running Casefold: automatic case enrichment, the enrichment API, and a
spent budget in the article's playbook, against the CrowdSec fake on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes.crowdsec import CrowdSecFake
from support.alerts import crowdsec_alert

URL = "/api/v1/alerts/wazuh"
KEY = "test-cti-key-0123"


@pytest.fixture
def cti() -> Iterator[CrowdSecFake]:
    with CrowdSecFake(
        {"1.2.3.4": "malicious", "5.6.7.8": "suspicious", "8.8.4.4": "benign"},
        api_keys=[KEY],
        quota=1000,
    ) as fake:
        yield fake


def settings_for(cti: CrowdSecFake, **kw: Any) -> dict[str, Any]:
    return {
        "threat_intel": {"crowdsec": {"url": cti.url, **kw.pop("crowdsec", {})}},
        "secrets": {"crowdsec_cti": {"CTI_API_KEY": KEY}},
        **kw,
    }


def case_for(api, ip: str) -> dict[str, Any]:
    items = api.get("/api/v1/cases", params={"limit": 500}).json()["items"]
    [case] = [c for c in items if c["fold"]["key"] == ip]
    return api.get(f"/api/v1/cases/{case['ref']}").json()


def enrich(api) -> None:
    api.fold()
    api.runtime.auto_enrich.drain()


def test_new_cases_get_verdicts_per_observable_and_on_the_timeline(api_factory, cti):
    api = api_factory(**settings_for(cti, auto_enrich=["crowdsec"]))
    for n, ip in enumerate(["1.2.3.4", "5.6.7.8", "4.4.4.4"]):
        assert api.post(URL, json=crowdsec_alert(n, ip)).status_code == 202
    enrich(api)
    bad = case_for(api, "1.2.3.4")
    [obs] = [o for o in bad["observables"] if o["value"] == "1.2.3.4"]
    assert obs["verdict"] == "malicious"
    entry = obs["verdicts"]["crowdsec"]
    assert entry["verdict"] == "malicious" and entry["from_cache"] is False
    assert entry["provider"] == "crowdsec" and entry["fetched_at"]
    assert "ssh:bruteforce" in entry["summary"] or "malicious" in entry["summary"]
    # the agent's private address is not sent anywhere
    private = [o for o in bad["observables"] if o["value"] == "192.0.2.10"]
    assert all(o["verdict"] is None for o in private)
    timeline = api.get(f"/api/v1/cases/{bad['ref']}/timeline").json()["items"]
    [event] = [e for e in timeline if e["kind"] == "observable_enriched"]
    assert event["new"] == "malicious" and event["field"] == "ip:1.2.3.4"
    assert event["detail"]["crowdsec"]["verdict"] == "malicious"
    unknown = case_for(api, "4.4.4.4")
    [obs] = [o for o in unknown["observables"] if o["value"] == "4.4.4.4"]
    assert obs["verdict"] == "unknown" and obs["verdicts"]["crowdsec"]["found"] is False
    assert KEY not in str(bad) and KEY not in str(timeline)


def test_a_flood_from_few_addresses_costs_one_call_each(api_factory, cti):
    api = api_factory(**settings_for(cti, auto_enrich=["crowdsec"]))
    ips = ["1.2.3.4", "5.6.7.8", "8.8.4.4", "4.4.4.4", "9.9.9.9"]
    body = [crowdsec_alert(n, ips[n % 5]) for n in range(300)]
    assert api.post(URL, json=body).status_code == 202
    enrich(api)
    assert cti.total == 5
    assert sorted(cti.calls_by_ip()) == sorted(ips)


def test_the_enrichment_route_tells_what_is_configured_and_spent(api_factory, cti):
    api = api_factory(**settings_for(cti, auto_enrich=["crowdsec", "virustotal"]))
    api.post(URL, json=crowdsec_alert(1, "1.2.3.4"))
    enrich(api)
    body = api.get("/api/v1/enrichment").json()
    assert body["auto_enrich"] == ["crowdsec"]  # virustotal has no key: left out
    crowdsec = body["providers"]["crowdsec"]
    assert crowdsec["configured"] and crowdsec["budget"]["day"] == {"limit": 50, "used": 1}
    assert crowdsec["calls"] == 1
    vt = body["providers"]["virustotal"]
    assert not vt["configured"] and "VIRUSTOTAL_API_KEY" in vt["reason"]
    assert KEY not in str(body)


def test_on_demand_lookup_and_its_errors(api_factory, cti):
    api = api_factory(**settings_for(cti))
    ok = api.post("/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "1.2.3.4"})
    assert ok.status_code == 200 and ok.json()["verdict"] == "malicious"
    again = api.post("/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "1.2.3.4"})
    assert again.json()["provenance"]["from_cache"] is True and cti.total == 1
    bad = api.post(
        "/api/v1/enrichment/lookup", json={"provider": "crowdsec", "kind": "ip", "value": "nope"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "value"
    domain = api.post("/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "a.io"})
    assert domain.status_code == 422 and "does not look up domain" in domain.json()["message"]
    missing = api.post("/api/v1/enrichment/lookup", json={"provider": "misp", "value": "1.2.3.4"})
    assert missing.status_code == 422 and "threat_intel.misp.url" in missing.json()["message"]
    extra = api.post(
        "/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "x", "y": 1}
    )
    assert extra.status_code == 422


def test_provider_down_is_a_502_with_a_reason(api_factory):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    api = api_factory(
        threat_intel={"crowdsec": {"url": f"http://127.0.0.1:{port}", "attempts": 1}},
        secrets={"crowdsec_cti": {"CTI_API_KEY": KEY}},
    )
    r = api.post("/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "1.2.3.4"})
    assert r.status_code == 502 and "cannot reach" in r.json()["message"]


def test_re_enriching_a_case(api_factory, cti):
    api = api_factory(**settings_for(cti, auto_enrich=["crowdsec"]))
    api.post(URL, json=crowdsec_alert(1, "1.2.3.4"))
    enrich(api)
    ref = case_for(api, "1.2.3.4")["ref"]
    r = api.post(f"/api/v1/cases/{ref}/enrich")
    assert r.status_code == 202 and r.json()["observables"] >= 1
    enrich(api)
    [obs] = [o for o in case_for(api, "1.2.3.4")["observables"] if o["value"] == "1.2.3.4"]
    assert obs["verdicts"]["crowdsec"]["from_cache"] is True  # asked again, answered by cache
    assert api.post("/api/v1/cases/CASE-999/enrich").status_code == 404


def test_re_enrich_without_auto_enrichment_is_a_conflict(api_factory, cti):
    api = api_factory(**settings_for(cti))
    api.post(URL, json=crowdsec_alert(1, "1.2.3.4"))
    api.fold()
    ref = case_for(api, "1.2.3.4")["ref"]
    r = api.post(f"/api/v1/cases/{ref}/enrich")
    assert r.status_code == 409 and "auto_enrich" in r.json()["message"]


def test_spent_budget_skips_the_lookup_and_the_article_run_goes_on(api_factory, cti):
    api = api_factory(
        **settings_for(
            cti,
            crowdsec={"budget": [{"calls": 1, "per": "day"}]},
            bundled_playbooks=["wazuh-crowdsec-ticketing"],
        )
    )
    api.post(URL, json=crowdsec_alert(1, "1.2.3.4", level=12))
    api.post(URL, json=crowdsec_alert(2, "5.6.7.8", level=12))
    api.fold()
    api.runtime.playbooks.drain()
    assert cti.total == 1
    second = case_for(api, "5.6.7.8")
    first = case_for(api, "1.2.3.4")
    assert first["priority"] == "critical"
    assert second["priority"] == "low"  # reputation unknown, as the article maps it
    assert second["comments"], "the rest of the run went on"
    alert_id = api.get("/api/v1/cases/" + second["ref"] + "/alerts").json()["items"][0]["id"]
    [run] = api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"]
    steps = {s["ref"]: s for s in run["steps"]}
    assert steps["lookup_ip_address"]["status"] == "skipped"
    assert steps["lookup_ip_address"]["reason"] == "skipped: budget"
    assert run["status"] == "succeeded"
