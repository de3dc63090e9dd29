"""The bundled wazuh-opencti playbook end to end: Wazuh alerts in, a fake OpenCTI on 127.0.0.1
asked, `opencti` events back into Wazuh through a real AF_UNIX queue socket read the way analysisd
reads it, or through the (fake) Wazuh API. Also `casefold playbook test` on it, offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.opencti import OpenCTIFake
from fakes.wazuh_api import WazuhAPIFake
from fakes.wazuh_queue import QueueReceiver
from support.alerts import sample
from support.runs import only_run, post, process, steps_of
from typer.testing import CliRunner

from casefold.cli import app

TOKEN = "opencti-token-7f3a9c21d4"
C2_IP = "116.163.24.195"
C2_PATTERN = f"[ipv4-addr:value = '{C2_IP}']"
# EICAR's SHA-256, upper-case as Sysmon writes it (external-apis.md §1.2)
SHA256_UPPER = "275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F"
SHA256 = SHA256_UPPER.lower()
PLAYBOOK = Path(__file__).resolve().parents[2] / "src/casefold/playbooks/bundled/wazuh-opencti.yml"


# -- alerts as integratord hands them over (external-apis.md §1.2) ------------------------------


def ids_alert(n: int = 0, *, dest_ip: str = C2_IP, src_ip: str = "10.20.0.42") -> dict[str, Any]:
    """A Suricata alert read on the manager itself (agent 000)."""
    return {
        "timestamp": "2024-05-03T10:15:02.551+0000",
        "rule": {
            "level": 6,
            "description": "ET MALWARE Cobalt Strike Beacon Observed",
            "id": "86601",
            "groups": ["ids", "suricata"],
        },
        "agent": {"id": "000", "name": "wazuh.manager"},
        "manager": {"name": "wazuh.manager"},
        "id": f"1714731302.{9912 + n}",
        "decoder": {"name": "json"},
        "location": "/var/log/suricata/eve.json",
        "data": {
            "timestamp": "2024-05-03T10:15:01.998713+0000",
            "flow_id": "1722409611209316",
            "in_iface": "eth1",
            "event_type": "alert",
            "src_ip": src_ip,
            "src_port": "49822",
            "dest_ip": dest_ip,
            "dest_port": "443",
            "proto": "TCP",
            "app_proto": "tls",
            "alert": {
                "action": "allowed",
                "gid": "1",
                "signature_id": "2027082",
                "rev": "4",
                "signature": "ET MALWARE Cobalt Strike Beacon Observed",
                "category": "A Network Trojan was detected",
                "severity": "1",
            },
        },
    }


def sysmon_alert() -> dict[str, Any]:
    """Sysmon event 1 from agent 003, hashes in upper case as Sysmon writes them."""
    return {
        "timestamp": "2024-05-03T10:12:44.120+0000",
        "rule": {
            "level": 3,
            "description": "Sysmon - Event 1: Process creation",
            "id": "92052",
            "groups": ["windows", "sysmon", "sysmon_eid1_detections"],
            "firedtimes": 4,
            "mail": False,
        },
        "agent": {"id": "003", "name": "WS-0042", "ip": "10.20.0.42"},
        "manager": {"name": "wazuh.manager"},
        "id": "1714731164.8812345",
        "decoder": {"name": "windows_eventchannel"},
        "location": "EventChannel",
        "data": {
            "win": {
                "system": {
                    "eventID": "1",
                    "providerName": "Microsoft-Windows-Sysmon",
                    "computer": "WS-0042.corp.local",
                },
                "eventdata": {
                    "image": "C:\\\\Users\\\\bob\\\\Downloads\\\\invoice.exe",
                    "commandLine": '"C:\\\\Users\\\\bob\\\\Downloads\\\\invoice.exe"',
                    "hashes": "SHA1=3395856CE81F2B7382DEE72602F798B642F14140,"
                    "MD5=44D88612FEA8A8F36DE82E1278ABB02F,"
                    f"SHA256={SHA256_UPPER},IMPHASH=F34D5F2D4577ED6D9CEEC516C1F5A744",
                    "user": "CORP\\\\bob",
                },
            }
        },
    }


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def opencti() -> Iterator[OpenCTIFake]:
    with OpenCTIFake(TOKEN) as fake:
        fake.add_indicator(
            C2_PATTERN,
            name="Cobalt Strike",
            score=80,
            confidence=70,
            labels=["malicious-activity"],
        )
        yield fake


@pytest.fixture
def queue() -> Iterator[QueueReceiver]:
    with QueueReceiver() as receiver:
        yield receiver


def settings_for(opencti: OpenCTIFake, *, token: str = TOKEN, **kw: Any) -> dict[str, Any]:
    return {
        "bundled_playbooks": ["wazuh-opencti"],
        "threat_intel": {"opencti": {"url": opencti.url}},
        "secrets": {"opencti": {"OPENCTI_API_TOKEN": token}, **kw.pop("secrets", {})},
        **kw,
    }


@pytest.fixture
def pb_api(api_factory, opencti, queue):
    return api_factory(**settings_for(opencti, wazuh={"queue_socket": queue.path}))


# -- through the queue socket -------------------------------------------------------------------


def test_an_ids_hit_goes_back_to_wazuh_as_one_opencti_event(pb_api, opencti, queue):
    alert = ids_alert()
    alert_id = post(pb_api, alert)
    process(pb_api)
    [msg] = queue.wait_for(1)
    assert msg.valid, msg.error
    # the manager's own alert: no agent part in the location
    assert msg.raw.startswith(b"1:opencti:{")
    assert (msg.queue, msg.location, msg.agent_id) == ("1", "opencti", "000")
    event = msg.event
    assert event["integration"] == "opencti"
    assert event["alert_id"] == alert["id"] and event["node"] == "wazuh.manager"
    hit = event["opencti"]
    assert hit["event_type"] == "indicator_pattern_match"
    assert hit["indicator"]["name"] == "Cobalt Strike"
    assert hit["indicator"]["pattern"] == C2_PATTERN
    assert hit["indicator_link"].startswith(f"{opencti.url}/dashboard/observations/indicators/")
    source = hit["source"]
    assert source["alert_id"] == alert["id"] and source["rule_id"] == "86601"
    assert source["alert"]["signature"] == "ET MALWARE Cobalt Strike Beacon Observed"
    assert source["dest_ip"] == C2_IP and source["src_ip"] == "10.20.0.42"

    run = only_run(pb_api, alert_id)
    assert run["status"] == "succeeded" and run["playbook"] == "wazuh-opencti"
    steps = steps_of(run)
    assert steps["lookup"]["result"]["verdict"] == "malicious"
    assert [r["sent"] for r in steps["send_hits"]["result"]] == [1]  # one datagram, no more
    assert steps["send_error"]["status"] == "skipped"
    # the remote end was asked about, the private source never
    assert opencti.calls_for(C2_IP) == 1 and opencti.calls_for("10.20.0.42") == 0


def test_a_sysmon_hash_hit_is_sent_on_behalf_of_the_agent(pb_api, opencti, queue):
    # An indicator whose pattern is not the bare hash: only the observable leads to it.
    dropper = opencti.add_indicator(
        f"[file:hashes.'SHA-256' = '{SHA256}' AND file:name = 'invoice.exe']",
        name="Invoice dropper",
        score=90,
    )
    opencti.add_observable(
        "StixFile", hashes={"SHA-256": SHA256}, name="invoice.exe", indicators=[dropper]
    )
    alert = sysmon_alert()
    alert_id = post(pb_api, alert)
    process(pb_api)
    [msg] = queue.wait_for(1)
    assert msg.valid, msg.error
    assert msg.raw.startswith(b"1:[003] (WS-0042) 10.20.0.42->opencti:{")
    assert (msg.agent_id, msg.agent_name, msg.agent_ip) == ("003", "WS-0042", "10.20.0.42")
    hit = msg.event["opencti"]
    assert hit["event_type"] == "observable_with_indicator"
    assert hit["indicator"]["name"] == "Invoice dropper"
    assert hit["observable_value"] == SHA256
    assert hit["source"]["alert_id"] == alert["id"]
    assert msg.event["alert_id"] == alert["id"]
    # OpenCTI 6's key, and the hash in the lower case OpenCTI stores
    [body] = opencti.bodies()
    assert body["variables"]["obs"]["filters"] == [{"key": "hashes.SHA-256", "values": [SHA256]}]
    assert SHA256_UPPER not in json.dumps(body)
    assert only_run(pb_api, alert_id)["status"] == "succeeded"


def test_unknown_observables_send_nothing_and_the_run_succeeds(pb_api, opencti, queue):
    unknown_id = post(pb_api, ids_alert(1, dest_ip="8.8.4.4"))
    process(pb_api)
    run = only_run(pb_api, unknown_id)
    assert run["status"] == "succeeded"
    steps = steps_of(run)
    assert steps["lookup"]["status"] == "succeeded"
    assert steps["lookup"]["result"]["found"] is False
    assert steps["lookup"]["result"]["verdict"] == "unknown"
    assert steps["send_hits"]["status"] == "skipped"
    assert steps["send_error"]["status"] == "skipped"
    assert opencti.calls_for("8.8.4.4") == 1  # it was asked
    # A hit afterwards is the first datagram on the socket: the unknown one sent none.
    hit = ids_alert(2)
    post(pb_api, hit)
    process(pb_api)
    [first] = queue.wait_for(1)
    assert first.event["alert_id"] == hit["id"]


def test_private_addresses_are_never_sent_to_opencti(pb_api, opencti, queue):
    # RFC 1918 and carrier-grade NAT (100.64/10): neither is a global address
    alert_id = post(pb_api, ids_alert(3, dest_ip="192.168.1.20", src_ip="100.64.3.2"))
    process(pb_api)
    run = only_run(pb_api, alert_id)
    assert run["status"] == "succeeded"
    assert opencti.requests == []
    lookup = steps_of(run)["lookup"]["result"]
    assert lookup["observables"] == [] and lookup["found"] is False
    assert queue.messages == []


def test_a_wrong_token_sends_an_error_event_and_never_the_token(api_factory, opencti, queue):
    wrong = "wrong-opencti-token-5d1e88"
    api = api_factory(**settings_for(opencti, token=wrong, wazuh={"queue_socket": queue.path}))
    alert = ids_alert()
    alert_id = post(api, alert)
    process(api)
    [msg] = queue.wait_for(1)
    assert msg.valid and msg.location == "opencti"
    event = msg.event
    assert event["integration"] == "opencti" and event["alert_id"] == alert["id"]
    assert event["opencti"]["event_type"] == "error"
    assert "AUTH_REQUIRED" in event["opencti"]["error"]
    assert wrong not in msg.raw.decode()
    # the token did reach OpenCTI (so the checks for its absence mean something)
    assert opencti.requests[0].request.headers["authorization"] == f"Bearer {wrong}"

    run = only_run(api, alert_id)
    steps = steps_of(run)
    assert steps["lookup"]["status"] == "failed"
    assert "AUTH_REQUIRED" in steps["lookup"]["error"]
    assert steps["send_hits"]["status"] == "skipped"
    assert steps["send_error"]["status"] == "succeeded"
    assert run["status"] == "succeeded"  # the lookup.error branch handled the failure
    assert wrong not in json.dumps(run)


def test_alerts_outside_its_groups_start_no_run(pb_api, opencti, queue):
    alert_id = post(pb_api, sample("sshd_bruteforce_nonexistent_user_5712.json"))
    process(pb_api)
    assert pb_api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"] == []
    assert opencti.requests == []


def test_the_same_indicator_asked_twice_costs_one_request(pb_api, opencti, queue):
    first, second = ids_alert(4), ids_alert(5)
    post(pb_api, first)
    process(pb_api)
    second_id = post(pb_api, second)
    process(pb_api)
    messages = queue.wait_for(2)
    assert opencti.calls_for(C2_IP) == 1
    # each event still names its own alert
    assert sorted(m.event["opencti"]["source"]["alert_id"] for m in messages) == sorted(
        [first["id"], second["id"]]
    )
    assert {m.event["opencti"]["indicator"]["name"] for m in messages} == {"Cobalt Strike"}
    [lookup] = steps_of(only_run(pb_api, second_id))["lookup"]["result"]["lookups"]
    assert lookup["provenance"]["provider"] == "opencti"
    assert lookup["provenance"]["from_cache"] is True


# -- through the Wazuh API ----------------------------------------------------------------------


def test_events_go_through_the_wazuh_api_when_one_is_set(api_factory, opencti):
    with WazuhAPIFake() as wazuh:
        api = api_factory(
            **settings_for(
                opencti,
                wazuh={"api_url": wazuh.url},
                secrets={
                    "wazuh_api": {
                        "WAZUH_API_USERNAME": wazuh.username,
                        "WAZUH_API_PASSWORD": wazuh.password,
                    }
                },
            )
        )
        alert = ids_alert()
        alert_id = post(api, alert)
        process(api)
        [event] = [json.loads(e) for e in wazuh.events]
        assert wazuh.logins == 1
    assert event["integration"] == "opencti" and event["alert_id"] == alert["id"]
    assert event["opencti"]["event_type"] == "indicator_pattern_match"
    assert event["opencti"]["indicator"]["name"] == "Cobalt Strike"
    assert event["opencti"]["source"]["alert_id"] == alert["id"]
    run = only_run(api, alert_id)
    assert run["status"] == "succeeded"
    assert [r["via"] for r in steps_of(run)["send_hits"]["result"]] == ["api"]
    assert wazuh.password not in json.dumps(run)


# -- casefold playbook test ---------------------------------------------------------------------


def test_playbook_test_offline_shows_the_lookup_as_a_dry_run(tmp_path, opencti):
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(json.dumps(ids_alert()))
    result = CliRunner().invoke(
        app,
        [
            "playbook",
            "test",
            str(PLAYBOOK),
            str(alert_file),
            "--json",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env={
            "CASEFOLD_THREAT_INTEL__OPENCTI__URL": opencti.url,
            "CASEFOLD_SECRET__OPENCTI__OPENCTI_API_TOKEN": TOKEN,
        },
    )
    assert result.exit_code == 0, result.output
    trace = json.loads(result.stdout)
    assert trace["live"] is False and trace["trigger"]["matched"] is True
    assert trace["status"] == "succeeded"
    steps = {s["ref"]: s for s in trace["steps"]}
    [lookup] = steps["lookup"]["result"]["lookups"]
    assert lookup["value"] == C2_IP and lookup["skipped"] == "dry run"
    assert steps["send_hits"]["status"] == "skipped"  # nothing found offline, nothing sent
    [request] = trace["http"]  # shown, not sent
    assert request["sent"] is False
    assert (request["provider"], request["lookup"]) == ("opencti", f"ip {C2_IP}")
    assert request["method"] == "POST" and request["url"].startswith(opencti.url)
    assert opencti.requests == []
    assert TOKEN not in result.stdout
    assert not (tmp_path / "data").exists()
