"""Factories for Wazuh alerts shaped like the real samples."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "wazuh"


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


_SSHD = sample("sshd_bruteforce_nonexistent_user_5712.json")
BASE_TIME = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def wazuh_time(at: datetime) -> str:
    """Wazuh's own format: local time with an offset that has no colon."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def sshd_alert(
    n: int,
    *,
    srcip: str = "203.0.113.7",
    minutes: float = 0,
    level: int = 10,
    rule_id: str = "5712",
    node: str | None = None,
) -> dict[str, Any]:
    alert = copy.deepcopy(_SSHD)
    at = BASE_TIME + timedelta(minutes=minutes)
    alert["id"] = f"{int(at.timestamp())}.{1000 + n}"
    alert["timestamp"] = wazuh_time(at)
    alert["data"]["srcip"] = srcip
    alert["rule"]["level"] = level
    alert["rule"]["id"] = rule_id
    if node:
        alert["cluster"] = {"name": "wazuh", "node": node}
    return alert


def fim_alert(n: int, *, agent_id: str = "010", minutes: float = 0) -> dict[str, Any]:
    alert = sample("syscheck_file_added_554_sha256.json")
    at = BASE_TIME + timedelta(minutes=minutes)
    alert["id"] = f"{int(at.timestamp())}.{5000 + n}"
    alert["timestamp"] = wazuh_time(at)
    alert["agent"]["id"] = agent_id
    alert["syscheck"]["path"] = f"/srv/file-{n}"
    return alert


# events[].meta as CrowdSec's notification plugins write it (external-apis.md §2.3); Wazuh's JSON
# decoder turns every scalar into a string.
META = [
    {"key": "ASNNumber", "value": "15169"},
    {"key": "ASNOrg", "value": "Google LLC"},
    {"key": "IsInEU", "value": "false"},
    {"key": "IsoCode", "value": "US"},
    {"key": "service", "value": "ssh"},
    {"key": "target_user", "value": "pascal"},
]


def crowdsec_alert(
    n: int,
    ip: str,
    level: int = 10,
    *,
    scenario: str = "crowdsecurity/ssh-bf",
    agent: str = "web-frontend-01",
) -> dict[str, Any]:
    alert = copy.deepcopy(sample("crowdsec_json_decoded_100003_indexer_doc.json"))
    for key in ("@timestamp", "_id", "input"):
        alert.pop(key)  # as integratord hands it over, not as the indexer stores it
    alert["id"] = f"1718788096.{9000 + n}"
    alert["timestamp"] = wazuh_time(BASE_TIME)
    alert["agent"] = {"id": "001", "name": agent, "ip": "192.0.2.10"}
    alert["rule"]["level"] = level
    cs = alert["data"]["crowdsec"]["alert"]
    cs["source"] = {"ip": ip, "scope": "Ip", "value": ip, "as_name": "Google LLC"}
    cs["scenario"] = scenario
    cs["message"] = f"Ip {ip} performed '{scenario}' (6 events over 2s)"
    cs["events"] = [{"meta": copy.deepcopy(META), "timestamp": "2022-02-12T14:10:23Z"}]
    return alert
