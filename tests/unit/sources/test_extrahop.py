"""Unit tests for casefold.sources.extrahop: trigger payloads and bare REST detections."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.extrahop import EXAMPLE_ID, example_detection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casefold.errors import InvalidAlertError
from casefold.sources.extrahop import (
    DEFAULT_RISK_LEVELS,
    UNSCORED_LEVEL,
    check_risk_levels,
    detection_id_of,
    level_for_risk,
    parse_extrahop_detection,
)
from casefold.sources.model import Observable

START, UPDATE, SENT = 1673508360001, 1673514000000, 1673518451000


def trigger(detection: dict[str, Any], event: str = "DETECTION_UPDATE") -> dict[str, Any]:
    return {"event": event, "sent_at": SENT, "detection": detection}


def contract_detection(**overrides: Any) -> dict[str, Any]:
    """What our trigger sends (external-apis.md §3.6, extrahop_side/README.md)."""
    detection: dict[str, Any] = {
        "id": EXAMPLE_ID,
        "title": "Rare SSH Port",
        "type": "rare_ssh_port",
        "risk_score": 60,
        "categories": ["sec.command", "sec.attack"],
        "status": "in_progress",
        "assignee": "admin",
        "ticket_id": "SEC-54799",
        "resolution": None,
        "start_time": START,
        "update_time": UPDATE,
        "participants": [
            {"object_type": "device", "object_id": 1904, "role": "victim"},
            {"object_type": "ipaddr", "object_value": "1.2.3.4", "role": "offender"},
        ],
        "mitre_tactics": [
            {"id": "TA0008", "name": "Lateral Movement"},
            {"id": "TA0011", "name": "Command and Control"},
        ],
        "mitre_techniques": [
            {"id": "T1021", "name": "Remote Services"},
            {"id": "T1571", "name": "Non-Standard Port"},
        ],
    }
    detection.update(overrides)
    return detection


# --- the two shapes --------------------------------------------------------------------------


def test_bare_rest_detection_normalises() -> None:
    alert = parse_extrahop_detection(example_detection())
    assert alert.to_dict() == {
        "source": "extrahop",
        "source_id": f"{EXAMPLE_ID}@{UPDATE}",
        "node": "extrahop",
        "time_original": str(START),
        "time_utc": "2023-01-12T07:26:00.001000Z",
        "title": "Rare SSH Port",
        "level": 8,
        "rule_id": "rare_ssh_port",
        "groups": ["extrahop", "sec.command", "sec.attack"],
        "mitre_ids": ["T1021", "T1571"],
        "tactics": ["Lateral Movement", "Command and Control"],
        "techniques": ["Remote Services", "Non-Standard Port"],
        "agent_id": None,
        "agent_name": None,
        "agent_ip": None,
        "manager": None,
        "location": f"detections/{EXAMPLE_ID}",
        "observables": [
            {
                "type": "ip",
                "value": "1.2.3.4",
                "field": "participants.1.object_value (offender)",
                "kind": "ipv4",
                "public": True,
            }
        ],
    }
    assert alert.time_utc == datetime(2023, 1, 12, 7, 26, 0, 1000, tzinfo=UTC)


def test_trigger_payload_normalises_like_the_rest_detection() -> None:
    pushed = parse_extrahop_detection(trigger(contract_detection()))
    polled = parse_extrahop_detection(example_detection())
    assert pushed.source_id == polled.source_id  # one alert whether pushed or polled
    expected = polled.to_dict()
    expected["observables"][0]["field"] = "detection.participants.1.object_value (offender)"
    assert pushed.to_dict() == expected


def test_create_event_parses_too() -> None:
    alert = parse_extrahop_detection(trigger(contract_detection(), "DETECTION_CREATE"))
    assert alert.title == "Rare SSH Port"


def test_camel_case_trigger_properties_are_tolerated() -> None:
    camel = {
        "id": EXAMPLE_ID,
        "title": "Rare SSH Port",
        "type": "rare_ssh_port",
        "riskScore": 92,
        "categories": ["sec.attack"],
        "startTime": START,
        "updateTime": UPDATE,
        "ticketId": "SEC-54799",
        "participants": [
            {"objectType": "ipaddr", "objectValue": "203.0.113.9", "role": "offender"},
            {"objectType": "device", "role": "victim", "ipaddr": "10.0.0.8", "hostname": "DB01"},
        ],
        # The trigger API's mitreCategories mixes tactics and techniques.
        "mitreCategories": [
            {"id": "TA0008", "name": "Lateral Movement"},
            {"id": "T1021", "name": "Remote Services"},
        ],
    }
    alert = parse_extrahop_detection(trigger(camel))
    assert alert.source_id == f"{EXAMPLE_ID}@{UPDATE}"
    assert alert.level == 15 and alert.time_original == str(START)
    assert (alert.tactics, alert.techniques, alert.mitre_ids) == (
        ["Lateral Movement"],
        ["Remote Services"],
        ["T1021"],
    )
    assert alert.observables == [
        Observable(
            "ip", "203.0.113.9", "detection.participants.0.objectValue (offender)", "ipv4", False
        ),
        Observable("ip", "10.0.0.8", "detection.participants.1.ipaddr (victim)", "ipv4", False),
        Observable("hostname", "db01", "detection.participants.1.hostname (victim)"),
    ]


def test_snake_case_wins_over_camel_case() -> None:
    alert = parse_extrahop_detection(contract_detection(riskScore=95, risk_score=10))
    assert alert.level == 5


def test_numeric_string_id_is_accepted() -> None:
    # ExtraHop's own ticketing example passes detection ids as strings.
    alert = parse_extrahop_detection(contract_detection(id="42"))
    assert alert.source_id == f"42@{UPDATE}" and detection_id_of(alert) == 42


def test_node_is_part_of_the_dedup_key() -> None:
    one = parse_extrahop_detection(example_detection(), node="console-a")
    two = parse_extrahop_detection(example_detection(), node="tenant-b")
    assert one.source_id == two.source_id and one.dedup_key != two.dedup_key
    assert one.dedup_key == f"extrahop|console-a|{EXAMPLE_ID}@{UPDATE}"


# --- identity: create vs update ------------------------------------------------------------


def test_update_with_new_activity_is_a_distinct_alert_of_the_same_detection() -> None:
    created = parse_extrahop_detection(
        trigger(contract_detection(update_time=START), "DETECTION_CREATE")
    )
    updated = parse_extrahop_detection(
        trigger(contract_detection(update_time=UPDATE), "DETECTION_UPDATE")
    )
    assert created.source_id == f"{EXAMPLE_ID}@{START}"
    assert updated.source_id == f"{EXAMPLE_ID}@{UPDATE}"
    assert created.dedup_key != updated.dedup_key
    assert detection_id_of(created) == detection_id_of(updated) == EXAMPLE_ID
    assert created.location == updated.location == f"detections/{EXAMPLE_ID}"


def test_ticket_only_change_is_the_same_alert() -> None:
    # ExtraHop fires DETECTION_UPDATE on creation too, and again when ticket fields change
    # (our own PATCH included): no new activity, no new alert.
    created = parse_extrahop_detection(trigger(contract_detection(), "DETECTION_CREATE"))
    echoed = parse_extrahop_detection(
        trigger(contract_detection(status="closed", resolution="action_taken"), "DETECTION_UPDATE")
    )
    assert created.dedup_key == echoed.dedup_key


@pytest.mark.parametrize(
    ("times", "version"),
    [
        ({"update_time": 30, "end_time": 20, "start_time": 10}, 30),
        ({"update_time": None, "end_time": 20, "start_time": 10}, 20),
        ({"start_time": 10}, 10),
    ],
)
def test_version_falls_back_to_end_then_start_time(times: dict[str, Any], version: int) -> None:
    detection = contract_detection()
    del detection["update_time"]
    detection.update(times)
    assert parse_extrahop_detection(detection).source_id == f"{EXAMPLE_ID}@{version}"


def test_detection_id_of() -> None:
    assert detection_id_of("997222@1673514000000") == 997222
    assert detection_id_of("997222") == 997222
    assert detection_id_of("sha256:abc") is None
    wazuh_like = parse_extrahop_detection(example_detection())
    wazuh_like.source = "wazuh"
    assert detection_id_of(wazuh_like) is None


# --- time ----------------------------------------------------------------------------------


def test_time_falls_back_to_create_time_then_sent_at() -> None:
    detection = contract_detection(create_time=START + 5)
    del detection["start_time"]
    assert parse_extrahop_detection(detection).time_original == str(START + 5)
    partial = {"id": 7, "title": "Partial"}
    alert = parse_extrahop_detection(trigger(partial))
    assert alert.time_original == str(SENT) and alert.source_id == "7"


def test_float_milliseconds_from_javascript() -> None:
    alert = parse_extrahop_detection(contract_detection(start_time=float(START)))
    assert alert.time_original == str(START)


# --- level ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "level"),
    [(0, 5), (39, 5), (40, 8), (69, 8), (70, 12), (89, 12), (90, 15), (100, 15), ("75", 12)],
)
def test_risk_score_bands(risk: Any, level: int) -> None:
    assert parse_extrahop_detection(contract_detection(risk_score=risk)).level == level


def test_unscored_detection_is_medium() -> None:
    assert parse_extrahop_detection(contract_detection(risk_score=None)).level == UNSCORED_LEVEL


def test_custom_risk_levels() -> None:
    levels = check_risk_levels({50: 10, 0: 3, 80: 14})
    assert list(levels) == [0, 50, 80]
    alert = parse_extrahop_detection(contract_detection(risk_score=60), risk_levels=levels)
    assert alert.level == 10
    assert level_for_risk(5, {10: 7, 50: 9}) == 7  # below every band: the lowest band's level
    assert level_for_risk(95) == 15 and DEFAULT_RISK_LEVELS[90] == 15


@pytest.mark.parametrize(
    "levels", [{}, {40: 8}, {0: 17}, {0: 5, 101: 15}, {"0": 5}, {0: True}, {0: -1}]
)
def test_bad_risk_levels_refused(levels: dict[Any, Any]) -> None:
    with pytest.raises(ValueError):
        check_risk_levels(levels)


# --- groups, MITRE, observables --------------------------------------------------------------


def test_categories_become_groups_without_duplicates() -> None:
    alert = parse_extrahop_detection(
        contract_detection(categories=["sec.attack", "extrahop", " sec.attack ", 5, "perf.auth"])
    )
    assert alert.groups == ["extrahop", "sec.attack", "perf.auth"]
    assert parse_extrahop_detection(contract_detection(categories="sec")).groups == [
        "extrahop",
        "sec",
    ]


def test_mitre_tolerates_strings_and_junk() -> None:
    alert = parse_extrahop_detection(
        contract_detection(
            mitre_tactics=["TA0006", {"name": "Discovery"}, None, 3],
            mitre_techniques=[{"id": "T1110"}, {"name": "no id"}, "T1046"],
        )
    )
    assert alert.tactics == ["TA0006", "Discovery"]
    # ids and names stay parallel: a technique without an id is dropped from both.
    assert alert.mitre_ids == ["T1110", "T1046"]
    assert alert.techniques == ["T1110", "T1046"]


def test_participants_become_observables_offenders_first() -> None:
    participants = [
        {"object_type": "device", "role": "victim", "hostname": "corpshare.example.com",
         "ipaddr": "192.168.6.179"},
        {"object_type": "ipaddr", "object_value": "2001:4860:4860::8888", "role": "offender",
         "username": "EXAMPLE\\jdoe"},
        {"object_type": "ipaddr", "object_value": "192.168.6.179", "role": "offender"},
        {"object_type": "ipaddr", "object_value": "not-an-ip", "role": "offender"},
        {"object_type": "device", "role": "victim", "ipaddrs": ["10.1.1.1", "8.8.8.8"],
         "hostname": "localhost", "username": "-"},
        "junk",
        {"object_type": "ipaddr", "object_value": "::ffff:198.51.100.7"},
    ]  # fmt: skip
    alert = parse_extrahop_detection(contract_detection(participants=participants))
    assert alert.observables == [
        Observable("ip", "2001:4860:4860::8888", "participants.1.object_value (offender)",
                   "ipv6", True),
        Observable("user", "EXAMPLE\\jdoe", "participants.1.username (offender)"),
        Observable("ip", "192.168.6.179", "participants.2.object_value (offender)", "ipv4", False),
        Observable("hostname", "corpshare.example.com", "participants.0.hostname (victim)"),
        Observable("ip", "10.1.1.1", "participants.4.ipaddrs (victim)", "ipv4", False),
        Observable("ip", "8.8.8.8", "participants.4.ipaddrs (victim)", "ipv4", True),
        Observable("ip", "198.51.100.7", "participants.6.object_value", "ipv4", False),
    ]  # fmt: skip


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [None, [], "detection", 5, [{"id": 1}]])
def test_non_object_input(doc: Any) -> None:
    with pytest.raises(InvalidAlertError, match="must be a JSON object"):
        parse_extrahop_detection(doc)


def _drop(key: str) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        del d[key]

    return mutate


def _set(key: str, value: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        d[key] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_drop("id"), "id"),
        (_set("id", None), "id"),
        (_set("id", "abc"), "id"),
        (_set("id", -1), "id"),
        (_set("id", True), "id"),
        (_set("id", 1.5), "id"),
        (_set("id", 2**64), "id"),
        (_drop("title"), "title"),
        (_set("title", 5), "title"),
        (_set("title", "  "), "title"),
        (_set("risk_score", "high"), "risk_score"),
        (_set("risk_score", 101), "risk_score"),
        (_set("risk_score", "1000000000"), "risk_score"),
        (_set("risk_score", False), "risk_score"),
        (_set("riskScore", 60.5), "riskScore"),
        (_set("start_time", "yesterday"), "start_time"),
        (_set("start_time", -5), "start_time"),
        (_set("start_time", 10**20), "start_time"),
        (_set("update_time", True), "update_time"),
        (_set("type", ["rare"]), "type"),
        (_set("categories", 5), "categories"),
        (_set("participants", {"role": "offender"}), "participants"),
        (_set("mitre_tactics", "TA0008"), "mitre_tactics"),
    ],
)
def test_bad_fields_name_the_field(mutate: Any, field: str) -> None:
    bare = contract_detection()
    if field == "riskScore":
        del bare["risk_score"]
    mutate(bare)
    with pytest.raises(InvalidAlertError) as info:
        parse_extrahop_detection(bare)
    assert info.value.field == field
    pushed = contract_detection()
    if field == "riskScore":
        del pushed["risk_score"]
    mutate(pushed)
    with pytest.raises(InvalidAlertError) as info:
        parse_extrahop_detection(trigger(pushed))
    assert info.value.field == f"detection.{field}"


def test_no_time_at_all() -> None:
    detection = contract_detection()
    del detection["start_time"], detection["update_time"]
    with pytest.raises(InvalidAlertError) as info:
        parse_extrahop_detection(detection)
    assert info.value.field == "start_time"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"event": "DETECTION_UPDATE", "detection": "997222"}, "detection"),
        ({"event": "DETECTION_UPDATE", "detection": None}, "detection"),
        ({"event": "DETECTION_DELETE", "detection": {}}, "event"),
        ({"event": 3, "detection": {}}, "event"),
        ({"sent_at": "now", "detection": {"id": 1, "title": "x", "start_time": 1}}, "sent_at"),
    ],
)
def test_bad_envelope(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAlertError) as info:
        parse_extrahop_detection(doc)
    assert info.value.field == field


def test_event_is_optional() -> None:
    alert = parse_extrahop_detection({"detection": contract_detection()})
    assert alert.source_id == f"{EXAMPLE_ID}@{UPDATE}"


def test_input_is_not_modified() -> None:
    doc = trigger(contract_detection())
    before = copy.deepcopy(doc)
    parse_extrahop_detection(doc)
    assert doc == before


# --- robustness: only InvalidAlertError, whatever the shape --------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1.2.3.4", "::1", "offender", "ipaddr", "device", "TA0001", "60", ""]),
)
_KEYS = st.sampled_from(
    ["id", "title", "risk_score", "riskScore", "start_time", "startTime", "update_time",
     "categories", "participants", "object_type", "object_value", "role", "ipaddr", "ipaddrs",
     "hostname", "username", "mitre_tactics", "mitre_techniques", "mitreCategories", "name",
     "type", "end_time", "create_time"]
)  # fmt: skip
_JSONISH = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_KEYS, st.text(max_size=6)), children, max_size=6),
    ),
    max_leaves=30,
)
_DETECTIONS = st.fixed_dictionaries(
    {
        "id": st.one_of(st.integers(0, 10**6), _SCALARS),
        "title": st.one_of(st.just("t"), _SCALARS),
        "start_time": st.one_of(st.integers(0, 2 * 10**12), _SCALARS),
    },
    optional={
        "risk_score": st.one_of(st.integers(-5, 105), _SCALARS),
        "update_time": _SCALARS,
        "categories": _JSONISH,
        "participants": st.one_of(st.lists(_JSONISH, max_size=4), _JSONISH),
        "mitre_tactics": _JSONISH,
        "mitre_techniques": _JSONISH,
        "mitreCategories": _JSONISH,
        "type": _JSONISH,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(_DETECTIONS, st.builds(trigger, _DETECTIONS), _JSONISH))
def test_only_invalid_alert_error_escapes(doc: Any) -> None:
    try:
        alert = parse_extrahop_detection(doc)
    except InvalidAlertError:
        return
    assert alert.source == "extrahop" and 0 <= alert.level <= 16
    alert.to_dict()


# --- the trigger script's own output -------------------------------------------------------

TRIGGER = Path(__file__).resolve().parents[3] / "src/casefold/extrahop_side/casefold-trigger.js"

# A stand-in for the ExtraHop trigger runtime: the globals the script uses, and an ODS target
# that records what it is asked to post.
_HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
class IPAddress { constructor(a) { this.a = a; } toString() { return this.a; } }
class Device { constructor(o) { Object.assign(this, o); } }
const sent = [];
const ctx = {
  IPAddress, Device, JSON, Date, String,
  event: process.argv[3],
  debug: () => {},
  Remote: {
    HTTP: (name) => ({ post: (req) => { sent.push({ target: name, req }); return true; } }),
  },
  Detection: {
    id: 997222, title: "Rare SSH Port", description: "d".repeat(9000), type: "rare_ssh_port",
    riskScore: 60, categories: ["sec.command", "sec.attack"], status: "in_progress",
    assignee: "admin", ticketId: "SEC-54799", resolution: null, startTime: 1673508360001,
    endTime: 1673508450000, updateTime: 1673514000000, isCustom: false,
    mitreCategories: [{ id: "TA0008", name: "Lateral Movement" },
                      { id: "T1021", name: "Remote Services" }],
    participants: [
      { role: "victim", object: new Device({ id: 1904, discoverId: "0050569a", dnsNames: [],
        dhcpName: "vm-a5f9b5", ipaddrs: [new IPAddress("10.1.2.3")] }) },
      { role: "offender", object: new IPAddress("1.2.3.4") },
    ],
    properties: { ports: ["SSH:7234", "SSH:22"] },
  },
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
process.stdout.write(JSON.stringify(sent));
"""


def run_trigger(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(_HARNESS)
    done = subprocess.run(
        [node, str(harness), str(TRIGGER), event],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("event", ["DETECTION_CREATE", "DETECTION_UPDATE"])
def test_trigger_script_output_parses(tmp_path: Path, event: str) -> None:
    [sent] = run_trigger(tmp_path, event)
    request = sent["req"]
    assert sent["target"] == "casefold" and request["path"] == "/api/v1/alerts/extrahop"
    assert request["headers"] == {
        "Authorization": "Bearer PASTE-CASEFOLD-INGEST-TOKEN-HERE",
        "Content-Type": "application/json",
    }
    payload = json.loads(request["payload"])
    assert payload["event"] == event and payload["contract"] == 1
    assert len(payload["detection"]["description"]) == 8001  # cut, with an ellipsis
    alert = parse_extrahop_detection(payload)
    polled = parse_extrahop_detection(example_detection())
    assert alert.source_id == polled.source_id
    assert (alert.level, alert.groups, alert.rule_id) == (
        polled.level,
        polled.groups,
        "rare_ssh_port",
    )
    assert alert.tactics == ["Lateral Movement"] and alert.mitre_ids == ["T1021"]
    victim = "detection.participants.0"
    assert alert.observables == [
        Observable(
            "ip", "1.2.3.4", "detection.participants.1.object_value (offender)", "ipv4", True
        ),
        Observable("ip", "10.1.2.3", f"{victim}.ipaddr (victim)", "ipv4", False),
        Observable("hostname", "vm-a5f9b5", f"{victim}.hostname (victim)"),
    ]


def test_trigger_script_ignores_other_events(tmp_path: Path) -> None:
    assert run_trigger(tmp_path, "HTTP_REQUEST") == []
