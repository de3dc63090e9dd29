"""`casefold playbook test` (one alert, no side effects) and `casefold runs show/retry`."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.crowdsec import CrowdSecFake
from support.alerts import BASE_TIME, sample, wazuh_time
from typer.testing import CliRunner

from casefold.cli import app
from casefold.config import Settings
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import receive
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert

PLAYBOOK = (
    Path(__file__).resolve().parents[2]
    / "src/casefold/playbooks/bundled/wazuh-crowdsec-ticketing.yml"
)
KEY = "cli-test-cti-key-0451"
SECRET_ENV = "CASEFOLD_SECRET__CROWDSEC_CTI__CTI_API_KEY"

runner = CliRunner()


def crowdsec_alert(ip: str, level: int = 12) -> dict[str, Any]:
    """A CrowdSec alert as integratord hands it over (built as tests/api do)."""
    alert = copy.deepcopy(sample("crowdsec_json_decoded_100003_indexer_doc.json"))
    for key in ("@timestamp", "_id", "input"):
        alert.pop(key)
    alert["id"] = "1718788096.9001"
    alert["timestamp"] = wazuh_time(BASE_TIME)
    alert["agent"] = {"id": "001", "name": "web-frontend-01", "ip": "192.0.2.10"}
    alert["rule"]["level"] = level
    cs = alert["data"]["crowdsec"]["alert"]
    cs["source"] = {"ip": ip, "scope": "Ip", "value": ip}
    cs["scenario"] = "crowdsecurity/ssh-bf"
    cs["events"] = [
        {
            "meta": [
                {"key": "service", "value": "ssh"},
                {"key": "target_user", "value": "pascal"},
            ]
        }
    ]
    return alert


def write(path: Path, doc: Any) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def crowdsec() -> Iterator[CrowdSecFake]:
    fake = CrowdSecFake({"1.2.3.4": "malicious", "5.6.7.8": "suspicious"}, api_keys=[KEY])
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def alert_file(tmp_path: Path) -> str:
    return write(tmp_path / "alert.json", crowdsec_alert("1.2.3.4"))


def live_env(crowdsec: CrowdSecFake) -> dict[str, str]:
    return {"CASEFOLD_THREAT_INTEL__CROWDSEC__URL": crowdsec.url, SECRET_ENV: KEY}


def without_durations(trace: dict[str, Any]) -> dict[str, Any]:
    trace = copy.deepcopy(trace)
    for step in trace["steps"]:
        step.pop("duration_ms")
    return trace


def test_dry_run_shows_requests_and_case_changes_and_writes_nothing(
    tmp_path: Path, alert_file: str
):
    data_dir = tmp_path / "data"
    r = run(
        "playbook",
        "test",
        str(PLAYBOOK),
        alert_file,
        "--data-dir",
        str(data_dir),
        env={SECRET_ENV: KEY},
    )
    assert r.exit_code == 0, r.output
    out = r.output
    assert "Trigger:  matched" in out
    assert "[succeeded] lookup_ip_address (cti.crowdsec.lookup_ip)" in out
    assert "HTTP requests (not sent):" in out
    assert "GET https://cti.api.crowdsec.net/v2/smoke/1.2.3.4" in out
    changes = out.split("Case changes that would happen:")[1].split("HTTP requests")[0]
    listed = [line.strip()[2:] for line in changes.strip().splitlines()]
    # create_case (its fields applied to the case the alert opens), update_case, create_comment
    assert len(listed) == 3 and all("CASE-0" in c for c in listed)
    assert "create_case" in listed[0] or "description, priority, severity, status" in listed[0]
    assert listed[1:] == ["update CASE-0: priority, severity", "comment on CASE-0"]
    # the dry-run lookup answers "unknown": the article's table maps that to low
    assert '"priority":"low"' in out
    assert "Run: succeeded (10 succeeded)" in out
    assert not data_dir.exists()  # no store, no database file
    assert KEY not in out


def test_live_run_takes_the_reputation_from_crowdsec(
    tmp_path: Path, alert_file: str, crowdsec: CrowdSecFake
):
    r = run(
        "playbook",
        "test",
        str(PLAYBOOK),
        alert_file,
        "--live",
        "--json",
        "--data-dir",
        str(tmp_path / "data"),
        env=live_env(crowdsec),
    )
    assert r.exit_code == 0, r.output
    trace = json.loads(r.stdout)
    steps = {s["ref"]: s for s in trace["steps"]}
    assert steps["lookup_ip_address"]["result"]["data"]["reputation"] == "malicious"
    assert steps["update_case"]["input"]["priority"] == "critical"
    assert steps["update_case"]["input"]["severity"] == "high"  # level 12
    assert trace["live"] is True
    assert trace["http"] == [
        {
            "method": "GET",
            "url": f"{crowdsec.url}/v2/smoke/1.2.3.4",
            "sent": True,
            "status_code": 200,
        }
    ]
    assert crowdsec.calls_for("1.2.3.4") == 1
    assert KEY not in r.output
    assert not (tmp_path / "data").exists()


def test_live_text_output_shows_sent_requests(alert_file: str, crowdsec: CrowdSecFake):
    crowdsec.set_ip("1.2.3.4", "suspicious")
    r = run("playbook", "test", str(PLAYBOOK), alert_file, "--live", env=live_env(crowdsec))
    assert r.exit_code == 0, r.output
    assert "HTTP requests (sent):" in r.output
    assert f"GET {crowdsec.url}/v2/smoke/1.2.3.4 → 200" in r.output
    assert '"priority":"high"' in r.output
    assert KEY not in r.output


def test_json_trace_is_stable(alert_file: str, crowdsec: CrowdSecFake):
    first = run("playbook", "test", str(PLAYBOOK), alert_file, "--json", env=live_env(crowdsec))
    second = run("playbook", "test", str(PLAYBOOK), alert_file, "--json", env=live_env(crowdsec))
    assert first.exit_code == second.exit_code == 0
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert without_durations(a) == without_durations(b)
    # keys are sorted, so two runs print the same text apart from the durations
    assert list(a) == sorted(a)
    assert [s["ref"] for s in a["steps"]] == [
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
    assert a["trigger"]["matched"] is True
    assert a["case"]["rule"] == "crowdsec-attacker" and a["case"]["key"] == "1.2.3.4"
    assert a["http"][0]["sent"] is False
    assert KEY not in first.output


def test_an_alert_the_trigger_does_not_match(tmp_path: Path):
    alert = write(tmp_path / "sshd.json", sample("sshd_bruteforce_nonexistent_user_5712.json"))
    r = run("playbook", "test", str(PLAYBOOK), alert)
    assert r.exit_code == 0, r.output
    assert "Trigger:  did not match" in r.output
    assert "trigger.groups (crowdsec)" in r.output
    as_json = run("playbook", "test", str(PLAYBOOK), alert, "--json")
    trace = json.loads(as_json.stdout)
    assert trace["trigger"]["matched"] is False and trace["status"] == "not_matched"
    assert trace["steps"] == [] and trace["effects"] == []


def test_a_failing_step_exits_1(alert_file: str, crowdsec: CrowdSecFake):
    crowdsec.api_keys = {"another-key"}  # CrowdSec answers 403
    r = run("playbook", "test", str(PLAYBOOK), alert_file, "--live", env=live_env(crowdsec))
    assert r.exit_code == 1, r.output
    assert "[failed] lookup_ip_address" in r.output
    assert "403" in r.output
    assert "[skipped] create_case" in r.output and "lookup_ip_address failed" in r.output
    assert "Run: failed" in r.output
    assert KEY not in r.output


def test_a_missing_secret_fails_the_lookup(alert_file: str):
    r = run("playbook", "test", str(PLAYBOOK), alert_file, env={SECRET_ENV: ""})
    assert r.exit_code == 1
    assert "secret crowdsec_cti.CTI_API_KEY is not configured" in r.output


def test_the_secret_is_masked_wherever_it_lands(tmp_path: Path):
    # A playbook that puts the secret in a request header, a URL and a step result.
    pb = tmp_path / "leaky.yml"
    pb.write_text(
        "title: Leaky\n"
        "trigger: {groups: [crowdsec]}\n"
        "actions:\n"
        "  - ref: call\n"
        "    action: core.http_request\n"
        "    args:\n"
        "      url: https://198.51.100.7/check?key=${{ SECRETS.crowdsec_cti.CTI_API_KEY }}\n"
        "      headers: {x-api-key: '${{ SECRETS.crowdsec_cti.CTI_API_KEY }}'}\n"
        "  - ref: echo\n"
        "    action: core.transform.reshape\n"
        "    args: {value: 'key is ${{ SECRETS.crowdsec_cti.CTI_API_KEY }}'}\n"
    )
    config = tmp_path / "casefold.yml"
    config.write_text(
        f"secrets: {{crowdsec_cti: {{CTI_API_KEY: {KEY}}}}}\n"
        "http_allow_networks: [198.51.100.0/24]\n"
    )
    alert = write(tmp_path / "a.json", crowdsec_alert("1.2.3.4"))
    for extra in ([], ["--json"]):
        r = run("playbook", "test", str(pb), alert, "--config", str(config), *extra)
        assert r.exit_code == 0, r.output
        assert KEY not in r.output
        assert "https://198.51.100.7/check?key=***" in r.output
        assert '"x-api-key": "***"' in r.output or '"x-api-key":"***"' in r.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"rule": ', "not valid JSON"),
        ('{"parameters": {"alert": {}}}', "not a usable Wazuh alert"),
        ("[1, 2]", "not a usable Wazuh alert"),
    ],
)
def test_a_bad_alert_file_is_one_line_and_exit_2(tmp_path: Path, content: str, says: str):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = run("playbook", "test", str(PLAYBOOK), str(bad))
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and says in r.stderr


def test_a_missing_alert_file_or_bad_playbook_is_exit_2(tmp_path: Path, alert_file: str):
    r = run("playbook", "test", str(PLAYBOOK), str(tmp_path / "missing.json"))
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    pb = tmp_path / "broken.yml"
    pb.write_text("title: x\nactions:\n  - ref: a\n    action: no.such.action\n")
    r = run("playbook", "test", str(pb), alert_file)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "no.such.action" in r.stderr


# -- runs show / retry ----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def failed_run_store(tmp_path: Path) -> Path:
    """A store holding run 1 of the article playbook, failed: CrowdSec refused the connection."""
    settings = Settings(
        data_dir=tmp_path / "store",
        bundled_playbooks=["wazuh-crowdsec-ticketing"],
        threat_intel={"crowdsec": {"url": f"http://127.0.0.1:{closed_port()}"}},
        secrets={"crowdsec_cti": {"CTI_API_KEY": KEY}},
    )
    rt = Runtime(settings)
    rt.start(folding=False)
    try:
        receive(
            Parsed([Item(0, crowdsec_alert("1.2.3.4"))], single=True), parse_wazuh_alert, rt.writer
        )
        rt.folding.drain()
        rt.playbooks.drain()
    finally:
        rt.stop()
    return settings.data_dir


def test_runs_show_and_retry(failed_run_store: Path):
    d = str(failed_run_store)
    shown = run("runs", "show", "1", "--data-dir", d)
    assert shown.exit_code == 0, shown.output
    assert "Run 1: playbook wazuh-crowdsec-ticketing" in shown.output
    assert "failed" in shown.output
    assert "[failed] lookup_ip_address (cti.crowdsec.lookup_ip)" in shown.output
    assert "[skipped] create_case" in shown.output
    assert KEY not in shown.output
    as_json = json.loads(run("runs", "show", "1", "--json", "--data-dir", d).stdout)
    assert as_json["status"] == "failed" and as_json["case"] == "CASE-1"
    retried = run("runs", "retry", "1", "--data-dir", d)
    assert retried.exit_code == 0, retried.output
    assert retried.stdout.strip() == "run 1 queued again"
    again = json.loads(run("runs", "show", "1", "--json", "--data-dir", d).stdout)
    assert again["status"] == "queued" and again["error"] is None
    assert {s["ref"] for s in again["steps"]} == {"stock_groups", "stock_ip"}  # the done ones


def test_runs_of_an_unknown_id(failed_run_store: Path):
    d = str(failed_run_store)
    for args in (("runs", "retry", "999"), ("runs", "show", "999")):
        r = run(*args, "--data-dir", d)
        assert r.exit_code == 1
        assert r.stderr.count("\n") == 1 and "run 999 does not exist" in r.stderr


def test_without_a_folding_rule_create_case_would_open_a_case(tmp_path: Path, alert_file: str):
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "rules:\n  - name: nothing\n    match: {groups: [no-such-group]}\n    key: id\n"
    )
    r = run(
        "playbook",
        "test",
        str(PLAYBOOK),
        alert_file,
        "--json",
        env={SECRET_ENV: KEY, "CASEFOLD_FOLDING_RULES": str(rules)},
    )
    assert r.exit_code == 0, r.output
    trace = json.loads(r.stdout)
    assert trace["case"] is None
    assert "open a new case: web-frontend-01" in trace["effects"]


def test_start_delays_are_not_waited_for(tmp_path: Path, alert_file: str):
    pb = tmp_path / "slow.yml"
    pb.write_text(
        "title: Slow\n"
        "actions:\n"
        "  - ref: later\n"
        "    action: core.transform.reshape\n"
        "    start_delay: 1h\n"
        "    args: {value: done}\n"
    )
    r = run("playbook", "test", str(pb), alert_file)
    assert r.exit_code == 0, r.output
    assert "[succeeded] later (core.transform.reshape)" in r.output
    assert "note:   start_delay 1:00:00 (not waited for)" in r.output
