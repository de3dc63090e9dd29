"""Unit tests for casefold.sources.wazuh against every real sample in shared/samples/wazuh."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casefold.errors import InvalidAlertError
from casefold.sources.model import NormalizedAlert, Observable
from casefold.sources.wazuh import (
    _TIMESTAMP_RE,
    _timestamp_from_parts,
    alert_content_hash,
    parse_wazuh_alert,
    wazuh_header,
    wazuh_timestamp,
)

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "samples" / "wazuh"


def load(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def ip(value: str, field: str, public: bool, kind: str = "ipv4") -> Observable:
    return Observable("ip", value, field, kind=kind, public=public)


def hsh(value: str, field: str, kind: str) -> Observable:
    return Observable("hash", value, field, kind=kind)


def obs(type_: str, value: str, field: str) -> Observable:
    return Observable(type_, value, field)


def minimal(**extra: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "timestamp": "2022-11-17T19:17:42.694+0200",
        "rule": {"level": 5, "id": "554", "description": "File added to the system."},
        "id": "1668705462.50453",
        "manager": {"name": "wazuh-manager"},
    }
    alert.update(extra)
    return alert


# --- every sample, exact -------------------------------------------------------------------------

# file → (expected scalar/list fields, expected observables in order)
EXPECTED: dict[str, tuple[dict[str, Any], list[Observable]]] = {
    "sshd_bruteforce_nonexistent_user_5712.json": (
        {
            "source_id": "1652272159.1549653",
            "node": "localhost.localdomain",
            "time_original": "2022-05-11T12:29:19.905+0000",
            "time_utc": datetime(2022, 5, 11, 12, 29, 19, 905000, tzinfo=UTC),
            "title": "sshd: brute force trying to get access to the system. Non existent user.",
            "level": 10,
            "rule_id": "5712",
            "groups": ["syslog", "sshd", "authentication_failures"],
            "mitre_ids": ["T1110"],
            "tactics": ["Credential Access"],
            "techniques": ["Brute Force"],
            "agent_id": "000",
            "agent_name": "localhost.localdomain",
            "agent_ip": None,
            "manager": "localhost.localdomain",
            "location": "/var/log/secure",
        },
        # predecoder.hostname is "localhost": not a useful hostname, so not extracted.
        [ip("172.17.1.1", "data.srcip", False), obs("user", "paco", "data.srcuser")],
    ),
    "syscheck_file_added_554_sha256.json": (
        {
            "source_id": "1668705462.50453",
            "node": "localhost.localdomain",
            "time_original": "2022-11-17T19:17:42.694+0200",
            "time_utc": datetime(2022, 11, 17, 17, 17, 42, 694000, tzinfo=UTC),
            "title": "File added to the system.",
            "level": 5,
            "rule_id": "554",
            "groups": ["ossec", "syscheck", "syscheck_entry_added", "syscheck_file"],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "010",
            "agent_name": "Ubuntu",
            "agent_ip": "10.0.2.15",
            "manager": "localhost.localdomain",
            "location": "syscheck",
        },
        [],  # md5/sha1/sha256_after are the empty-file hashes: noise, not observables
    ),
    "virustotal_malicious_87105.json": (
        {
            "source_id": "1668706225.104492",
            "node": "localhost.localdomain",
            "time_original": "2022-11-17T19:30:25.085+0200",
            "time_utc": datetime(2022, 11, 17, 17, 30, 25, 85000, tzinfo=UTC),
            "title": "VirusTotal: Alert - /media/user/software/eicar.com - 66 engines detected "
            "this file",
            "level": 12,
            "rule_id": "87105",
            "groups": ["virustotal"],
            "mitre_ids": ["T1203"],
            "tactics": ["Execution"],
            "techniques": ["Exploitation for Client Execution"],
            "agent_id": "010",
            "agent_name": "Ubuntu",
            "agent_ip": "10.0.2.15",
            "manager": "localhost.localdomain",
            "location": "virustotal",
        },
        [
            hsh("3395856ce81f2b7382dee72602f798b642f14140", "data.virustotal.source.sha1", "sha1"),
            hsh("44d88612fea8a8f36de82e1278abb02f", "data.virustotal.source.md5", "md5"),
        ],
    ),
    "virustotal_no_positives_87104.json": (
        {
            "source_id": "1668705727.84464",
            "node": "localhost.localdomain",
            "time_original": "2022-11-17T19:22:07.974+0200",
            "time_utc": datetime(2022, 11, 17, 17, 22, 7, 974000, tzinfo=UTC),
            "title": "VirusTotal: Alert - /media/user/software/suspicious-file10.exe - "
            "No positives found",
            "level": 3,
            "rule_id": "87104",
            "groups": ["virustotal"],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "010",
            "agent_name": "Ubuntu",
            "agent_ip": "10.0.2.15",
            "manager": "localhost.localdomain",
            "location": "virustotal",
        },
        [],  # the scanned file was empty: its md5/sha1 are the empty-file hashes
    ),
    "virustotal_error_credentials_87102.json": (
        {
            "source_id": "1668705463.51155",
            "node": "localhost.localdomain",
            "time_original": "2022-11-17T19:17:43.637+0200",
            "time_utc": datetime(2022, 11, 17, 17, 17, 43, 637000, tzinfo=UTC),
            "title": "VirusTotal: Error: Check credentials",
            "level": 3,
            "rule_id": "87102",
            "groups": ["virustotal"],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "000",
            "agent_name": "localhost.localdomain",
            "agent_ip": None,
            "manager": "localhost.localdomain",
            "location": "virustotal",
        },
        [],
    ),
    "web_accesslog_shellshock_31168.json": (
        {
            "source_id": "1612213124.6448363",
            "node": "ubuntu-bionic",
            "time_original": "2021-02-01T20:58:44.830+0000",
            "time_utc": datetime(2021, 2, 1, 20, 58, 44, 830000, tzinfo=UTC),
            "title": "Shellshock attack detected",
            "level": 15,
            "rule_id": "31168",
            "groups": ["web", "accesslog", "attack"],
            "mitre_ids": ["T1068", "T1190"],
            "tactics": ["Privilege Escalation", "Initial Access"],
            "techniques": [
                "Exploitation for Privilege Escalation",
                "Exploit Public-Facing Application",
            ],
            "agent_id": "000",
            "agent_name": "ubuntu-bionic",
            "agent_ip": None,
            "manager": "ubuntu-bionic",
            "location": "/var/log/nginx/access.log",
        },
        # data.url is "/" (a request path, no host): not a URL observable.
        [ip("192.168.0.223", "data.srcip", False)],
    ),
    "sysmon_event1_process_create_hashes_100500.json": (
        {
            "source_id": "1634973338.510123480",
            "node": "tactical",
            "time_original": "2021-10-23T18:15:38.119+1100",
            "time_utc": datetime(2021, 10, 23, 7, 15, 38, 119000, tzinfo=UTC),
            "title": "Sysmon - Event 1: Process Sublime Text started but not allowed by the "
            "software policy.",
            "level": 10,
            "rule_id": "100500",
            "groups": ["windows", "sysmon", "sysmon_event1", "software_policy"],
            "mitre_ids": ["T1036"],
            "tactics": ["Defense Evasion"],
            "techniques": ["Masquerading"],
            "agent_id": "033",
            "agent_name": "DESKTOP-NCLALBR",
            "agent_ip": "192.168.252.120",
            "manager": "tactical",
            "location": "EventChannel",
        },
        [
            hsh("ed96eead6232e2a1591ecd5b0b3544f98f5e3de1", "data.win.eventdata.hashes", "sha1"),
            hsh("4b9e87d1547a4fc9e47d6a6d8dc5e381", "data.win.eventdata.hashes", "md5"),
            hsh(
                "0479327e7136fa14f69d231d1b38cf654421073c8a0166bf6690a3d2c0b14ffa",
                "data.win.eventdata.hashes",
                "sha256",
            ),
            hsh("72491100e121c09085313f2baf04ad3a", "data.win.eventdata.hashes", "imphash"),
            obs("user", "MYORG\\jromero", "data.win.eventdata.user"),  # one real backslash
            obs("hostname", "desktop-nclalbr.myorg.org", "data.win.system.computer"),
        ],
    ),
    "sysmon_event1_suspicious_svchost_61618_indexer_doc.json": (
        {
            "source_id": "1672191316.26025597",
            "node": "****-VirtualBox",
            "time_original": "2022-12-27T17:35:16.614-0800",
            "time_utc": datetime(2022, 12, 28, 1, 35, 16, 614000, tzinfo=UTC),
            "title": "Sysmon - Suspicious Process - svchost.exe",
            "level": 12,
            "rule_id": "61618",
            "groups": ["windows", "sysmon", "sysmon_process-anomalies"],
            "mitre_ids": ["T1055"],
            "tactics": ["Defense Evasion", "Privilege Escalation"],
            "techniques": ["Process Injection"],
            "agent_id": "007",
            "agent_name": "DESKTOP-9LO9B7Q",
            "agent_ip": "10.0.2.6",
            "manager": "****-VirtualBox",
            "location": "EventChannel",
        },
        [
            hsh(
                "643ec58e82e0272c97c2a59f6020970d881af19c0ad5029db9c958c13b6558c7",
                "data.win.eventdata.hashes",
                "sha256",
            ),
            obs("user", "NT AUTHORITY\\SYSTEM", "data.win.eventdata.user"),
            obs("hostname", "desktop-9lo9b7q", "data.win.system.computer"),
        ],
    ),
    "suricata_ids_alert_86601_indexer_doc.json": (
        {
            "source_id": "1672191304.26000539",
            "node": "*****-VirtualBox",
            "time_original": "2022-12-27T17:35:04.971-0800",
            "time_utc": datetime(2022, 12, 28, 1, 35, 4, 971000, tzinfo=UTC),
            "title": "Suricata: Alert - ET SCAN Potential SSH Scan OUTBOUND",
            "level": 3,
            "rule_id": "86601",
            "groups": ["ids", "suricata"],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "007",
            "agent_name": "DESKTOP-9LO9B7Q",
            "agent_ip": "10.0.2.6",
            "manager": "*****-VirtualBox",
            "location": "\\Program Files\\Suricata\\log\\eve.json",
        },
        [ip("10.0.2.8", "data.src_ip", False), ip("10.0.2.6", "data.dest_ip", False)],
    ),
    "windows_security_4624_rdp_loopback_92656_indexer_doc.json": (
        {
            "source_id": "1672181842.597751",
            "node": "*****-VirtualBox",
            "time_original": "2022-12-27T14:57:22.221-0800",
            "time_utc": datetime(2022, 12, 27, 22, 57, 22, 221000, tzinfo=UTC),
            "title": "User: WORKGROUP\\*****@gmail.com logged using Remote Desktop Connection "
            "(RDP) from loopback address, possible exploit over reverse tunneling using "
            "stolen credentials.",
            "level": 15,
            "rule_id": "92656",
            "groups": ["win_evt_channel"],
            "mitre_ids": ["T1021.001", "T1078.002"],
            "tactics": [
                "Lateral Movement",
                "Defense Evasion",
                "Persistence",
                "Privilege Escalation",
                "Initial Access",
            ],
            "techniques": ["Remote Desktop Protocol", "Domain Accounts"],
            "agent_id": "004",
            "agent_name": "DESKTOP-CKP652S",
            "agent_ip": "10.0.2.9",
            "manager": "*****-VirtualBox",
            "location": "EventChannel",
        },
        [
            ip("127.0.0.1", "data.win.eventdata.ipAddress", False),  # loopback kept, not public
            obs("user", "****@gmail.com", "data.win.eventdata.targetUserName"),
            obs("hostname", "desktop-ckp652s", "data.win.system.computer"),
        ],
    ),
    "osquery_24010.json": (
        {
            "source_id": "1532958886.437707",
            "node": "manager",
            "time_original": "2018-07-30T13:54:46.476+0000",
            "time_utc": datetime(2018, 7, 30, 13, 54, 46, 476000, tzinfo=UTC),
            "title": "osquery data grouped",
            "level": 3,
            "rule_id": "24010",
            "groups": ["osquery"],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "000",
            "agent_name": "manager",
            "agent_ip": None,
            "manager": "manager",
            "location": "osquery",
        },
        # No data.osquery.columns hashes in this query result; only the log's host.
        [obs("hostname", "manager", "predecoder.hostname")],
    ),
    "crowdsec_json_decoded_100003_indexer_doc.json": (
        {
            "source_id": "1718788096.977749",  # alert id, not the indexer's random _id
            "node": "wazuh-server",
            "time_original": "2024-06-19T09:08:16.381+0000",
            "time_utc": datetime(2024, 6, 19, 9, 8, 16, 381000, tzinfo=UTC),
            "title": "Test alert for CrowdSec.",
            "level": 3,
            "rule_id": "100003",
            "groups": ["crowdsec"],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "001",
            "agent_name": "crowdsecclient",
            "agent_ip": None,  # "<client IP>" (redacted upstream) is not an address
            "manager": "wazuh-server",
            "location": "/tmp/crowdsec_alerts.json",
        },
        [ip("10.10.10.10", "data.crowdsec.alert.source.ip", False)],
    ),
    "vulnerability_detector_23505_abridged.json": (
        {
            # source_id: content hash, checked separately below
            "node": "unknown",  # abridged: no cluster, no manager
            "time_original": "2020-07-20T00:41:36.302+0000",
            "time_utc": datetime(2020, 7, 20, 0, 41, 36, 302000, tzinfo=UTC),
            "title": "CVE-2020-12395 affects Mozilla Thunderbird 68.0 (x64 en-US)",
            "level": 10,
            "rule_id": "23505",
            "groups": [],
            "mitre_ids": [],
            "tactics": [],
            "techniques": [],
            "agent_id": "003",
            "agent_name": "Windows",
            "agent_ip": "10.0.1.102",
            "manager": None,
            "location": "vulnerability-detector",
        },
        [],
    ),
}

AR_ENVELOPE = "active_response_stdin_add_firewall_drop_31168.json"


def test_every_sample_is_covered() -> None:
    on_disk = {p.name for p in SAMPLES.glob("*.json")}
    assert on_disk == set(EXPECTED) | {AR_ENVELOPE}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_normalises_exactly(name: str) -> None:
    fields, observables = EXPECTED[name]
    alert = parse_wazuh_alert(load(name))
    assert alert.source == "wazuh"
    for key, value in fields.items():
        assert getattr(alert, key) == value, key
    assert alert.time_utc.utcoffset() is not None
    assert alert.observables == observables
    alert.to_dict()  # JSON-ready view works for every sample


def test_active_response_envelope_alert_normalises() -> None:
    envelope = load(AR_ENVELOPE)
    alert = parse_wazuh_alert(envelope["parameters"]["alert"])
    direct = parse_wazuh_alert(load("web_accesslog_shellshock_31168.json"))
    assert alert == direct
    assert alert.dedup_key == "wazuh|ubuntu-bionic|1612213124.6448363"


def test_active_response_envelope_itself_is_rejected_with_a_hint() -> None:
    with pytest.raises(InvalidAlertError, match="parameters.alert") as info:
        parse_wazuh_alert(load(AR_ENVELOPE))
    assert info.value.field == "rule"


def test_to_dict_time_is_z() -> None:
    d = parse_wazuh_alert(load("syscheck_file_added_554_sha256.json")).to_dict()
    assert d["time_utc"] == "2022-11-17T17:17:42.694000Z"


# --- content-hash source_id -----------------------------------------------------------------------


def test_abridged_alert_gets_stable_content_hash_id() -> None:
    raw = load("vulnerability_detector_23505_abridged.json")
    expected = (
        "sha256:" + hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
    )
    first = parse_wazuh_alert(raw)
    assert first.source_id == expected
    assert parse_wazuh_alert(copy.deepcopy(raw)).source_id == expected
    assert alert_content_hash(raw) == expected
    # Key order does not matter (canonical JSON sorts keys).
    reordered = dict(reversed(list(raw.items())))
    assert parse_wazuh_alert(reordered).source_id == expected


def test_content_hash_ignores_indexer_only_keys() -> None:
    raw = load("vulnerability_detector_23505_abridged.json")
    expected = parse_wazuh_alert(raw).source_id
    indexed = dict(raw)
    indexed.update(
        {
            "@timestamp": "2020-07-20T00:41:37.000Z",
            "_id": "iyleVoUBP2FetjEtbbO1",
            "input": {"type": "log"},
            "GeoLocation": {"country_name": "Nowhere"},
        }
    )
    assert parse_wazuh_alert(indexed).source_id == expected
    changed = dict(raw, location="somewhere-else")
    assert parse_wazuh_alert(changed).source_id != expected


@pytest.mark.parametrize("bad_id", ["", "   ", None, 1668705462.50453, 12, ["x"]])
def test_missing_or_non_string_id_falls_back_to_content_hash(bad_id: object) -> None:
    alert = parse_wazuh_alert(minimal(id=bad_id))
    assert alert.source_id.startswith("sha256:")
    assert len(alert.source_id) == len("sha256:") + 64


def test_indexer_id_is_not_the_key() -> None:
    raw = load("suricata_ids_alert_86601_indexer_doc.json")
    assert parse_wazuh_alert(raw).source_id == raw["id"] != raw["_id"]


def test_content_hash_falls_back_for_what_orjson_refuses() -> None:
    # Python's json parser yields ints beyond 64 bits; orjson cannot encode them.
    a = parse_wazuh_alert(minimal(id=None, data={"n": 2**70}))
    b = parse_wazuh_alert(minimal(id=None, data={"n": 2**70}))
    c = parse_wazuh_alert(minimal(id=None, data={"n": 2**70 + 1}))
    assert a.source_id == b.source_id != c.source_id
    assert a.source_id.startswith("sha256:")


def test_unhashable_content_without_id_is_invalid_alert() -> None:
    with pytest.raises(InvalidAlertError) as info:
        parse_wazuh_alert(minimal(id=None, data={1: "x", "a": "y"}))  # mixed key types
    assert info.value.field == "id"


# --- node / dedup key -----------------------------------------------------------------------------


def test_same_id_on_two_nodes_gives_different_dedup_keys() -> None:
    a = parse_wazuh_alert(minimal(cluster={"name": "wazuh", "node": "worker01"}))
    b = parse_wazuh_alert(minimal(cluster={"name": "wazuh", "node": "worker02"}))
    assert a.source_id == b.source_id == "1668705462.50453"
    assert a.dedup_key == "wazuh|worker01|1668705462.50453"
    assert b.dedup_key == "wazuh|worker02|1668705462.50453"


@pytest.mark.parametrize(
    ("extra", "node"),
    [
        ({"cluster": {"node": "worker01"}}, "worker01"),
        ({"cluster": {"node": ""}}, "wazuh-manager"),
        ({"cluster": {"name": "wazuh"}}, "wazuh-manager"),
        ({"cluster": "worker01"}, "wazuh-manager"),
        ({}, "wazuh-manager"),
        ({"manager": {"name": 5}}, "unknown"),
        ({"manager": None}, "unknown"),
    ],
)
def test_node_fallbacks(extra: dict[str, Any], node: str) -> None:
    assert parse_wazuh_alert(minimal(**extra)).node == node


# --- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-11-17T19:17:42.694+0200", datetime(2022, 11, 17, 17, 17, 42, 694000, tzinfo=UTC)),
        ("2022-11-17T19:17:42.694+02:00", datetime(2022, 11, 17, 17, 17, 42, 694000, tzinfo=UTC)),
        ("2022-12-27T17:35:04.971-0800", datetime(2022, 12, 28, 1, 35, 4, 971000, tzinfo=UTC)),
        ("2024-06-19T09:08:16.381Z", datetime(2024, 6, 19, 9, 8, 16, 381000, tzinfo=UTC)),
        ("2024-06-19T09:08:16Z", datetime(2024, 6, 19, 9, 8, 16, tzinfo=UTC)),
        ("2024-06-19T09:08:16+0000", datetime(2024, 6, 19, 9, 8, 16, tzinfo=UTC)),
        ("2021-10-23T18:15:38+1100", datetime(2021, 10, 23, 7, 15, 38, tzinfo=UTC)),
        ("2022-12-27T22:57:20.6791696Z", datetime(2022, 12, 27, 22, 57, 20, 679169, tzinfo=UTC)),
        ("2024-06-19T09:08:16.5+05:30", datetime(2024, 6, 19, 3, 38, 16, 500000, tzinfo=UTC)),
    ],
)
def test_wazuh_timestamp_forms(value: str, expected: datetime) -> None:
    parsed = wazuh_timestamp(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2022-11-17",  # no time
        "2022-11-17T19:17:42",  # no offset: local time of an unknown zone
        "2022-11-17T19:17:42.694",
        "2022-13-17T19:17:42Z",
        "2022-02-30T19:17:42Z",
        "2022-11-17T25:17:42Z",
        "2022-11-17T19:17:42+2500",
        "0001-01-01T00:00:00+0100",  # before datetime.min once converted to UTC
        "1668705462.50453",
    ],
)
def test_wazuh_timestamp_rejects(value: str) -> None:
    with pytest.raises(InvalidAlertError) as info:
        wazuh_timestamp(value)
    assert info.value.field == "timestamp"


_TWO = st.integers(0, 99).map("{:02d}".format)


@settings(max_examples=400, deadline=None)
@given(
    year=st.integers(1, 9999).map("{:04d}".format),
    month=_TWO,
    day=_TWO,
    clock=st.tuples(_TWO, _TWO, _TWO),
    sep=st.sampled_from(["T", " "]),
    frac=st.one_of(st.just(""), st.from_regex(r"[.,][0-9]{1,9}", fullmatch=True)),
    zone=st.one_of(
        st.sampled_from(["Z", "z"]),
        st.tuples(st.sampled_from("+-"), _TWO, st.sampled_from([":", ""]), _TWO).map("".join),
    ),
)
def test_the_fast_timestamp_path_reads_like_the_parts(year, month, day, clock, sep, frac, zone):
    # wazuh_timestamp hands what its pattern accepts to datetime.fromisoformat; whatever that
    # returns must be what the field-by-field reading returns, and what it refuses must fail.
    value = f"{year}-{month}-{day}{sep}{':'.join(clock)}{frac}{zone}"
    match = _TIMESTAMP_RE.fullmatch(value)
    assert match is not None
    try:
        expected = _timestamp_from_parts(match, value)
    except InvalidAlertError:
        with pytest.raises(InvalidAlertError):
            wazuh_timestamp(value)
        return
    assert wazuh_timestamp(value) == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_header_is_the_normalised_alert_without_its_details(name: str) -> None:
    # File intake stores alerts with the header alone; it must index them as intake would.
    raw = load(name)
    full, header = parse_wazuh_alert(raw), wazuh_header(raw)
    assert header.observables == [] and header.groups == [] and header.mitre_ids == []
    for field in ("source_id", "node", "time_utc", "time_original", "title", "level", "rule_id"):
        assert getattr(header, field) == getattr(full, field)
    assert (header.agent_id, header.agent_name, header.manager, header.dedup_key) == (
        full.agent_id,
        full.agent_name,
        full.manager,
        full.dedup_key,
    )


def test_time_original_is_kept_verbatim() -> None:
    alert = parse_wazuh_alert(minimal(timestamp="2022-11-17T19:17:42.694+02:00"))
    assert alert.time_original == "2022-11-17T19:17:42.694+02:00"


def test_indexer_doc_with_only_at_timestamp() -> None:
    raw = minimal()
    del raw["timestamp"]
    raw["@timestamp"] = "2022-12-28T01:35:04.971Z"
    alert = parse_wazuh_alert(raw)
    assert alert.time_original == "2022-12-28T01:35:04.971Z"
    assert alert.time_utc == datetime(2022, 12, 28, 1, 35, 4, 971000, tzinfo=UTC)


def test_timestamp_is_preferred_over_at_timestamp() -> None:
    alert = parse_wazuh_alert(minimal(**{"@timestamp": "2030-01-01T00:00:00Z"}))
    assert alert.time_original == "2022-11-17T19:17:42.694+0200"


# --- required fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda a: a.pop("rule"), "rule"),
        (lambda a: a.update(rule="5712"), "rule"),
        (lambda a: a.update(rule=None), "rule"),
        (lambda a: a.update(rule=[{"level": 3}]), "rule"),
        (lambda a: a["rule"].pop("level"), "rule.level"),
        (lambda a: a["rule"].update(level=None), "rule.level"),
        (lambda a: a["rule"].update(level="high"), "rule.level"),
        (lambda a: a["rule"].update(level="10.5"), "rule.level"),
        (lambda a: a["rule"].update(level=10.0), "rule.level"),
        (lambda a: a["rule"].update(level=True), "rule.level"),
        (lambda a: a["rule"].update(level=[10]), "rule.level"),
        (lambda a: a["rule"].update(level=-1), "rule.level"),
        (lambda a: a["rule"].update(level=17), "rule.level"),
        (lambda a: a["rule"].update(level=10**5000), "rule.level"),
        (lambda a: a["rule"].update(level="9" * 5000), "rule.level"),
        (lambda a: a.pop("timestamp"), "timestamp"),
        (lambda a: a.update(timestamp=None), "timestamp"),
        (lambda a: a.update(timestamp=1668705462), "timestamp"),
        (lambda a: a.update(timestamp={"t": 1}), "timestamp"),
        (lambda a: a.update(timestamp="not a time"), "timestamp"),
    ],
)
def test_missing_or_wrong_required_fields(mutate: Any, field: str) -> None:
    raw = minimal()
    mutate(raw)
    with pytest.raises(InvalidAlertError) as info:
        parse_wazuh_alert(raw)
    assert info.value.field == field
    assert info.value.message
    assert len(info.value.message) < 300  # never echoes a huge payload back


@pytest.mark.parametrize("raw", [None, [], "alert", 5, [{"rule": {"level": 3}}]])
def test_non_object_input(raw: object) -> None:
    with pytest.raises(InvalidAlertError, match="alert must be a JSON object") as info:
        parse_wazuh_alert(raw)  # type: ignore[arg-type]
    assert info.value.field is None


@pytest.mark.parametrize(("level", "expected"), [("10", 10), (" 7 ", 7), ("0", 0), (16, 16)])
def test_level_coercion(level: object, expected: int) -> None:
    raw = minimal()
    raw["rule"]["level"] = level
    assert parse_wazuh_alert(raw).level == expected


def test_rule_optional_fields_fallbacks() -> None:
    alert = parse_wazuh_alert(minimal(rule={"level": 3, "id": "100200"}))
    assert alert.title == "Wazuh rule 100200"
    alert = parse_wazuh_alert(minimal(rule={"level": 3, "id": 100200, "description": ""}))
    assert alert.title == "Wazuh rule 100200"
    assert alert.rule_id == "100200"
    alert = parse_wazuh_alert(minimal(rule={"level": 3}))
    assert alert.title == "Wazuh alert"
    assert alert.rule_id is None


def test_mitre_and_groups_tolerate_strings_and_junk() -> None:
    rule = {
        "level": 3,
        "groups": "sysmon",
        "mitre": {"id": "T1110", "tactic": ["Credential Access", 5, None, ""], "technique": 7},
    }
    alert = parse_wazuh_alert(minimal(rule=rule))
    assert alert.groups == ["sysmon"]
    assert alert.mitre_ids == ["T1110"]
    assert alert.tactics == ["Credential Access"]
    assert alert.techniques == []


def test_agent_fields() -> None:
    alert = parse_wazuh_alert(minimal(agent={"id": "003", "name": "WS-0042", "ip": "10.20.0.42"}))
    assert (alert.agent_id, alert.agent_name, alert.agent_ip) == ("003", "WS-0042", "10.20.0.42")
    alert = parse_wazuh_alert(minimal(agent={"id": "001", "ip": "any"}))
    assert alert.agent_ip is None
    alert = parse_wazuh_alert(minimal(agent="001"))
    assert (alert.agent_id, alert.agent_name, alert.agent_ip) == (None, None, None)


# --- observables from synthetic alerts ------------------------------------------------------------


def test_observable_fields_all_sources() -> None:
    data = {
        "srcip": "8.8.8.8",
        "dstip": "::ffff:10.1.1.1",
        "src_ip": "-",
        "dest_ip": "null",
        "srcuser": "-",
        "dstuser": "root",
        "url": "http://bad.example/x.sh",
        "hostname": "web01.corp.example",
        "aws": {"sourceIPAddress": "2A00:1450:4010:0C0E:0000:0000:0000:0071"},
        "office365": {"ClientIP": "203.0.113.7"},
        "win": {
            "system": {"computer": "localhost"},
            "eventdata": {
                "ipAddress": "::1",
                "sourceIp": "",
                "destinationIp": "116.163.24.195",
                "queryName": "CDN.BootCSS.com.",
                "queryResults": "type: 5 cdn.bootcss.com.cdn.dnsv1.com.cn;::ffff:116.163.24.195;"
                "::ffff:1.1.1.1;",
                "targetUserName": "",
                "user": "CORP\\\\bob",
                "hashes": "SHA256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            },
        },
        "dns": {
            "question": {"name": "evil.example"},
            "answers": [
                {"name": "evil.example", "type": "A", "data": "9.9.9.9"},
                {"name": "evil.example", "type": "aaaa", "data": "2001:4860:4860::8888"},
                {"name": "evil.example", "type": "CNAME", "data": "1.2.3.4"},
                "junk",
            ],
        },
        "osquery": {"columns": {"sha256": "A" * 64, "md5": "nope", "sha1": "b" * 40}},
        "audit": {"execve": {"a0": "curl", "a1": "-O", "a2": "https://bad.example/y"}},
    }
    raw = minimal(
        data=data,
        syscheck={"md5_after": "C" * 32, "sha1_after": 5, "sha256_after": "null"},
        predecoder={"hostname": "192.168.1.20"},
    )
    assert parse_wazuh_alert(raw).observables == [
        ip("8.8.8.8", "data.srcip", True),
        ip("10.1.1.1", "data.dstip", False),
        ip("::1", "data.win.eventdata.ipAddress", False, "ipv6"),
        ip("116.163.24.195", "data.win.eventdata.destinationIp", True),
        ip("2a00:1450:4010:c0e::71", "data.aws.sourceIPAddress", True, "ipv6"),
        ip("203.0.113.7", "data.office365.ClientIP", False),
        ip("9.9.9.9", "data.dns.answers", True),
        ip("2001:4860:4860::8888", "data.dns.answers", True, "ipv6"),
        ip("1.1.1.1", "data.win.eventdata.queryResults", True),
        hsh("c" * 32, "syscheck.md5_after", "md5"),
        hsh("a" * 64, "data.osquery.columns.sha256", "sha256"),
        hsh("b" * 40, "data.osquery.columns.sha1", "sha1"),
        obs("domain", "cdn.bootcss.com", "data.win.eventdata.queryName"),
        obs("domain", "evil.example", "data.dns.question.name"),
        obs("user", "root", "data.dstuser"),
        obs("user", "CORP\\bob", "data.win.eventdata.user"),
        obs("url", "http://bad.example/x.sh", "data.url"),
        obs("url", "https://bad.example/y", "data.audit.execve.a2"),
        obs("hostname", "web01.corp.example", "data.hostname"),
        ip("192.168.1.20", "predecoder.hostname", False),
    ]


def test_crowdsec_string_scalars_do_not_matter() -> None:
    raw = load("crowdsec_json_decoded_100003_indexer_doc.json")
    raw["data"]["crowdsec"]["alert"]["source"]["ip"] = "null"
    assert parse_wazuh_alert(raw).observables == []


# --- robustness: only InvalidAlertError, whatever the shape ---------------------------------------

_KEYS = st.sampled_from(
    [
        "srcip", "dstip", "src_ip", "dest_ip", "srcuser", "dstuser", "url", "hostname", "win",
        "eventdata", "system", "computer", "ipAddress", "destinationIp", "sourceIp", "hashes",
        "queryName", "queryResults", "user", "targetUserName", "dns", "question", "name",
        "answers", "type", "data", "aws", "sourceIPAddress", "office365", "ClientIP", "crowdsec",
        "alert", "source", "ip", "osquery", "columns", "sha256", "md5", "sha1", "virustotal",
        "audit", "execve", "a0", "level", "id", "node", "x",
    ]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "null", "true", "66", "-", "", "::1", "127.0.0.1", "8.8.8.8", "::ffff:1.2.3.4",
            "A", "AAAA", "SHA256=" + "A" * 64, "MD5=" + "b" * 32 + ",SHA1=zz", "http://x.example/",
            "type: 5 a.example;::ffff:8.8.8.8;", "2022-11-17T19:17:42.694+0200", "localhost",
            "d41d8cd98f00b204e9800998ecf8427e", "C\\\\x",
            "a" * 64, "B" * 40, "c" * 32, "ftp://x", "https://[::1",
        ]
    ),
)  # fmt: skip
_JSONISH = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_KEYS, st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=30,
)
_RULES = st.one_of(
    _JSONISH,
    st.fixed_dictionaries(
        {"level": st.one_of(st.integers(0, 16), st.sampled_from(["3", "12", " 5"]), _SCALARS)},
        optional={
            "id": _JSONISH,
            "description": _JSONISH,
            "groups": _JSONISH,
            "mitre": _JSONISH,
        },
    ),
)
_TIMESTAMPS = st.one_of(
    st.sampled_from(["2022-11-17T19:17:42.694+0200", "2024-06-19T09:08:16Z", "2022-11-17"]),
    _SCALARS,
)
_OPTIONAL_PARTS = {
    "@timestamp": _TIMESTAMPS,
    "id": st.one_of(st.text(max_size=12), _SCALARS),
    "data": _JSONISH,
    "syscheck": _JSONISH,
    "agent": _JSONISH,
    "manager": _JSONISH,
    "cluster": _JSONISH,
    "predecoder": _JSONISH,
    "location": _JSONISH,
    "_id": _JSONISH,
}
_ALERTS = st.one_of(
    # Anything goes, required fields included: mostly rejected, never with another exception.
    st.fixed_dictionaries(
        {}, optional={"rule": _RULES, "timestamp": _TIMESTAMPS, **_OPTIONAL_PARTS}
    ),
    # Valid rule and timestamp, so the rest of the (random) alert is actually parsed.
    st.fixed_dictionaries(
        {
            "rule": st.fixed_dictionaries(
                {"level": st.integers(0, 16)},
                optional={"id": _JSONISH, "description": _JSONISH, "mitre": _JSONISH},
            ),
            "timestamp": st.just("2022-11-17T19:17:42.694+0200"),
        },
        optional=_OPTIONAL_PARTS,
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_ALERTS)
def test_random_alerts_only_raise_invalid_alert_error(raw: dict[str, Any]) -> None:
    try:
        alert = parse_wazuh_alert(raw)
    except InvalidAlertError as exc:
        assert exc.field in (None, "rule", "rule.level", "timestamp", "id")
        return
    assert isinstance(alert, NormalizedAlert)
    assert alert.time_utc.utcoffset() is not None
    assert alert.source_id
    keys = [(o.type, o.value) for o in alert.observables]
    assert len(keys) == len(set(keys))
    alert.to_dict()


def _shaped(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts following the real observable paths (all keys optional), with random leaves."""
    return st.fixed_dictionaries(
        {},
        optional={
            key: _shaped(sub) if isinstance(sub, dict) else st.one_of(sub, _JSONISH)
            for key, sub in spec.items()
        },
    )


_LEAF = _SCALARS
_ANSWER = st.fixed_dictionaries(
    {}, optional={"type": st.one_of(st.sampled_from(["A", "aaaa", "CNAME"]), _LEAF), "data": _LEAF}
)
_DATA_SHAPED = _shaped(
    {
        "srcip": _LEAF, "dstip": _LEAF, "src_ip": _LEAF, "dest_ip": _LEAF, "srcuser": _LEAF,
        "dstuser": _LEAF, "url": _LEAF, "hostname": _LEAF,
        "aws": {"sourceIPAddress": _LEAF}, "office365": {"ClientIP": _LEAF},
        "crowdsec": {"alert": {"source": {"ip": _LEAF}}},
        "win": {
            "system": {"computer": _LEAF},
            "eventdata": {
                "ipAddress": _LEAF, "sourceIp": _LEAF, "destinationIp": _LEAF, "hashes": _LEAF,
                "queryName": _LEAF, "queryResults": _LEAF, "user": _LEAF,
                "targetUserName": _LEAF,
            },
        },
        "dns": {
            "question": {"name": _LEAF},
            "answers": st.one_of(st.lists(st.one_of(_ANSWER, _LEAF), max_size=4), _ANSWER),
        },
        "osquery": {"columns": {"sha256": _LEAF, "md5": _LEAF, "sha1": _LEAF}},
        "virustotal": {"source": {"md5": _LEAF, "sha1": _LEAF}},
        "audit": {"execve": st.dictionaries(_KEYS, _LEAF, max_size=4)},
    }
)  # fmt: skip
_SYSCHECK_SHAPED = _shaped({"md5_after": _LEAF, "sha1_after": _LEAF, "sha256_after": _LEAF})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(_JSONISH, _DATA_SHAPED),
    syscheck=st.one_of(_JSONISH, _SYSCHECK_SHAPED),
    predecoder=st.one_of(_JSONISH, _shaped({"hostname": _LEAF})),
)
def test_random_data_trees_never_break_a_valid_alert(
    data: Any, syscheck: Any, predecoder: Any
) -> None:
    alert = parse_wazuh_alert(minimal(data=data, syscheck=syscheck, predecoder=predecoder))
    for o in alert.observables:
        assert o.type in ("ip", "hash", "domain", "url", "user", "hostname")
        assert o.value
        if o.type == "ip":
            assert o.public is not None
        if o.type == "hash":
            assert o.value == o.value.lower()


@pytest.mark.parametrize("depth", [300, 5000])
def test_deeply_nested_data_without_id(depth: int) -> None:
    nested: Any = "leaf"
    for _ in range(depth):
        nested = {"x": nested}
    try:
        alert = parse_wazuh_alert(minimal(id=None, data=nested))
    except InvalidAlertError as exc:
        assert exc.field == "id"
    else:
        assert alert.source_id.startswith("sha256:")


def test_lone_surrogates_do_not_crash() -> None:
    alert = parse_wazuh_alert(minimal(id=None, data={"srcuser": "\udcff", "url": "http://\ud800"}))
    assert alert.source_id.startswith("sha256:")
    # Python's json parser accepts lone-surrogate escapes (orjson rejects them at intake).
    assert obs("user", "\udcff", "data.srcuser") in alert.observables
