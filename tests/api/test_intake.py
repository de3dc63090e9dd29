"""POST /api/v1/alerts/wazuh: one, many, NDJSON; duplicates; every kind of bad input."""

from __future__ import annotations

import orjson
import pytest
from support.alerts import sample, sshd_alert

from casefold.config import Settings

URL = "/api/v1/alerts/wazuh"
NDJSON = {"Content-Type": "application/x-ndjson"}


def test_one_alert_is_stored_and_acknowledged_with_its_id(api):
    r = api.post(URL, role="ingest", json=sshd_alert(1))
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    alert_id = body["results"][0]["id"]
    stored = api.get(f"/api/v1/alerts/{alert_id}", role="viewer").json()
    assert stored["raw"] == sshd_alert(1)  # the raw alert is kept exactly
    assert stored["normalized"]["rule_id"] == "5712"
    assert stored["source_id"] == sshd_alert(1)["id"]


def test_same_alert_twice_is_a_duplicate_and_stores_nothing_new(api):
    first = api.post(URL, json=sshd_alert(1)).json()["results"][0]
    again = api.post(URL, json=sshd_alert(1)).json()
    assert again["duplicates"] == 1 and again["accepted"] == 0
    assert again["results"][0] == {"index": 0, "id": first["id"], "duplicate": True}
    assert len(api.get("/api/v1/alerts").json()["items"]) == 1


def test_same_id_from_two_cluster_nodes_is_two_alerts(api):
    a = sshd_alert(1, node="worker-1")
    b = sshd_alert(1, node="worker-2")
    body = api.post(URL, json=[a, b]).json()
    assert body["accepted"] == 2
    assert body["results"][0]["id"] != body["results"][1]["id"]


def test_alert_without_id_is_keyed_by_content(api):
    vuln = sample("vulnerability_detector_23505_abridged.json")
    assert "id" not in vuln
    first = api.post(URL, json=vuln).json()
    second = api.post(URL, json=vuln).json()
    assert first["accepted"] == 1 and second["duplicates"] == 1


def test_json_array_batch(api):
    body = api.post(URL, json=[sshd_alert(i) for i in range(5)]).json()
    assert body["accepted"] == 5
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]


def test_ndjson_batch_with_bad_lines_stores_the_good_ones(api):
    lines = [
        orjson.dumps(sshd_alert(1)),
        b"{not json",
        orjson.dumps({"timestamp": "2026-11-20T10:00:00.000+0000"}),  # no rule
        b"",  # blank lines are skipped, not items
        orjson.dumps([1, 2]),  # not an object
        orjson.dumps(sshd_alert(2)),
    ]
    r = api.post(URL, content=b"\n".join(lines), headers=NDJSON)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == 3
    res = body["results"]
    assert res[1]["index"] == 1 and res[1]["line"] == 2 and res[1]["error"]["column"] >= 1
    assert res[2]["error"]["field"] == "rule"
    assert res[3]["index"] == 3 and res[3]["line"] == 5
    assert "object" in res[3]["error"]["message"]
    assert res[4]["id"] > res[0]["id"]
    assert len(api.get("/api/v1/alerts").json()["items"]) == 2


def test_invalid_json_is_400_with_line_and_column(api):
    r = api.post(
        URL,
        content=b'{\n  "rule": {"level": 3,\n  oops}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_json"
    assert body["line"] == 3 and body["column"] == 3


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"timestamp": "2026-11-20T10:00:00.000+0000"}, "rule"),
        ({"rule": {"level": 3, "id": "1"}}, "timestamp"),
        ({"rule": {"id": "1"}, "timestamp": "2026-11-20T10:00:00.000+0000"}, "rule.level"),
        ({"rule": {"level": 3}, "timestamp": "yesterday"}, "timestamp"),
    ],
)
def test_invalid_alert_is_422_naming_the_field(api, doc, field):
    r = api.post(URL, json=doc)
    assert r.status_code == 422
    assert r.json()["field"] == field


def test_a_value_that_is_not_an_object_is_422(api):
    r = api.post(URL, json="hello")
    assert r.status_code == 422
    assert "object" in r.json()["message"]


def test_batch_where_every_item_is_bad_is_422_and_stores_nothing(api):
    r = api.post(URL, json=[{"rule": {}}, 3])
    assert r.status_code == 422
    assert [x["index"] for x in r.json()["results"]] == [0, 1]
    assert api.get("/api/v1/alerts").json()["items"] == []


def test_body_over_the_limit_is_413(tmp_path, database_url):
    from fastapi.testclient import TestClient

    from casefold.app import create_app
    from casefold.runtime import Runtime

    settings = Settings(data_dir=tmp_path / "d", database_url=database_url, max_body_bytes=2048)
    runtime = Runtime(settings)
    with TestClient(create_app(runtime, manage_runtime=True)) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        big = [sshd_alert(i) for i in range(20)]
        r = client.post(URL, json=big, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"


def test_wazuh_quirks_are_accepted(api):
    # The indexer export: @timestamp, _id, input, and offsets without a colon.
    for name in (
        "crowdsec_json_decoded_100003_indexer_doc.json",
        "suricata_ids_alert_86601_indexer_doc.json",
        "windows_security_4624_rdp_loopback_92656_indexer_doc.json",
        "sysmon_event1_process_create_hashes_100500.json",
    ):
        r = api.post(URL, json=sample(name))
        assert r.status_code == 202, (name, r.text)
    crowdsec = sample("crowdsec_json_decoded_100003_indexer_doc.json")
    stored = api.get("/api/v1/alerts", params={"rule_id": "100003"}).json()["items"][0]
    assert stored["source_id"] == crowdsec["id"]  # not the indexer's random _id


def test_every_sample_is_accepted(api, samples_dir):
    names = sorted(p.name for p in samples_dir.glob("*.json") if "active_response" not in p.name)
    body = api.post(URL, json=[sample(n) for n in names]).json()
    assert body["accepted"] == len(names), body


def test_the_fast_path_answers_like_the_api(api):
    """Once a token is verified, intake skips the framework; the answers must not change."""
    assert api.post(URL, role="ingest", json=sshd_alert(1)).status_code == 202  # verifies token
    assert api.runtime.tokens.cached(api.tokens["ingest"]) is not None
    r = api.post(URL, role="ingest", content=b'{"a":', headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"], r.json()["line"]) == (400, "invalid_json", 1)
    r = api.post(URL, role="ingest", json={"rule": {"level": 3}})
    assert (r.status_code, r.json()["field"]) == (422, "timestamp")
    r = api.post(URL, role="ingest", json=sshd_alert(1))
    assert r.status_code == 202 and r.json()["duplicates"] == 1
    r = api.post(URL, role="viewer", json=sshd_alert(2))  # not allowed: falls through to the API
    assert r.status_code == 403
