"""The playbook engine through the API, on SQLite and PostgreSQL: runs queued with the fold,
recorded step by step, triggers, create_case/upsert_case composing with folding, the library
keeping the last good version, the SSRF guard, retry, and taking over a crashed runner's runs."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.http_echo import EchoServer
from sqlalchemy import select, update
from support.alerts import fim_alert, sshd_alert

from casefold.access import Role, create_token
from casefold.intake.files import ingest_files
from casefold.store.tables import alerts as alerts_table
from casefold.store.tables import playbook_runs

URL = "/api/v1/alerts/wazuh"


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


def write_playbooks(directory: Path, **playbooks: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in playbooks.items():
        (directory / f"{name}.yml").write_text(textwrap.dedent(text))


def make_api(api_factory: Any, tmp_path: Path, playbooks: dict[str, str], **kw: Any) -> Any:
    """Write the playbooks first, then build the API on them."""
    write_playbooks(tmp_path / "pb", **playbooks)
    return api_factory(playbooks_dir=tmp_path / "pb", **kw)


def post(api: Any, *alerts: dict[str, Any]) -> list[int]:
    response = api.post(URL, json=list(alerts))
    assert response.status_code == 202, response.text
    return [r["id"] for r in response.json()["results"]]


def process(api: Any) -> None:
    api.fold()
    api.runtime.playbooks.drain()


def runs_of(api: Any, alert_id: int) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/alerts/{alert_id}/runs")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def the_run(api: Any, alert_id: int) -> dict[str, Any]:
    runs = runs_of(api, alert_id)
    assert len(runs) == 1, runs
    return runs[0]


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["ref"]: s for s in run["steps"]}


def all_cases(api: Any) -> list[dict[str, Any]]:
    return api.get("/api/v1/cases", params={"limit": 500}).json()["items"]


def case(api: Any, ref: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/cases/{ref}")
    assert response.status_code == 200, response.text
    return response.json()


def timeline(api: Any, ref: str) -> list[dict[str, Any]]:
    return api.get(f"/api/v1/cases/{ref}/timeline", params={"limit": 1000}).json()["items"]


# -- runs and their steps ---------------------------------------------------------------------

RECORDED = """\
title: Record every step
trigger: {groups: [sshd]}
actions:
  - ref: ip
    action: core.transform.reshape
    args: {value: "${{ TRIGGER.data.data.srcip }}"}
  - ref: divide
    action: core.transform.apply
    depends_on: [ip]
    args: {value: "${{ TRIGGER.alert.level - 10 }}", python_lambda: "lambda x: 1 / x"}
  - ref: never
    action: core.transform.reshape
    depends_on: [divide]
    args: {value: 1}
  - ref: handle
    action: core.transform.reshape
    depends_on: [divide.error]
    args:
      value:
        error: "${{ ACTIONS.divide.error }}"
        opened: ${{ TRIGGER.case.opened_by_alert }}
"""


def test_a_run_and_every_step_are_recorded(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"record": RECORDED})
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7", level=10))
    process(api)
    run = the_run(api, alert_id)
    assert run["playbook"] == "record" and run["alert_id"] == alert_id
    assert run["status"] == "succeeded" and run["error"] is None
    assert run["attempts"] == 1 and len(run["version"]) == 16
    assert run["started_at"] and run["finished_at"] and run["case"].startswith("CASE-")
    assert [s["ref"] for s in run["steps"]] == ["ip", "divide", "never", "handle"]
    ip, divide, never, handle = (steps(run)[r] for r in ("ip", "divide", "never", "handle"))

    assert ip["status"] == "succeeded" and ip["action"] == "core.transform.reshape"
    assert ip["input"] == {"value": "203.0.113.7"} and ip["result"] == "203.0.113.7"
    assert ip["error"] is None and ip["attempts"] == 1
    assert isinstance(ip["duration_ms"], int) and ip["duration_ms"] >= 0 and ip["started_at"]

    assert divide["status"] == "failed" and divide["result"] is None
    assert divide["input"] == {"value": 0, "python_lambda": "lambda x: 1 / x"}
    assert "division by zero" in divide["error"]
    assert isinstance(divide["duration_ms"], int)

    assert never["status"] == "skipped" and never["reason"] == "divide failed"
    assert never["input"] is None and never["attempts"] == 0

    assert handle["status"] == "succeeded"
    assert handle["result"]["opened"] is True
    assert "division by zero" in handle["result"]["error"]

    single = api.get(f"/api/v1/runs/{run['id']}")
    assert single.status_code == 200 and single.json() == run
    assert api.get("/api/v1/runs/999999").status_code == 404
    assert api.get("/api/v1/alerts/999999/runs").status_code == 404


def test_the_case_timeline_records_the_run_with_its_reason(api_factory, tmp_path):
    # a second playbook whose failure nobody handles
    unhandled = RECORDED.replace("depends_on: [divide.error]", "depends_on: [ip]").replace(
        "ACTIONS.divide.error", "ACTIONS.ip.result"
    )
    api = make_api(api_factory, tmp_path, {"record": RECORDED, "unhandled": unhandled})
    ok, bad = post(api, sshd_alert(1, srcip="203.0.113.7"), sshd_alert(2, srcip="203.0.113.8"))
    process(api)

    runs = {r["playbook"]: r for r in runs_of(api, ok)}
    assert runs["record"]["case"] == runs["unhandled"]["case"]
    events = [e for e in timeline(api, runs["record"]["case"]) if e["kind"] == "playbook_run"]
    assert len(events) == 2
    assert set(runs) == {"record", "unhandled"}
    by_run = {e["detail"]["run_id"]: e for e in events}
    good = by_run[runs["record"]["id"]]
    assert good["actor"] == "playbook:record"
    assert good["detail"]["status"] == "succeeded" and good["detail"]["alert_id"] == ok
    assert good["detail"]["reason"] == (
        f"playbook record run {runs['record']['id']} succeeded (1 failed, 1 skipped, 2 succeeded)"
    )
    failed = by_run[runs["unhandled"]["id"]]
    assert runs["unhandled"]["status"] == "failed"
    assert runs["unhandled"]["error"].startswith("step divide failed: division by zero")
    assert failed["detail"]["status"] == "failed"
    assert failed["detail"]["reason"].startswith(
        f"playbook unhandled run {runs['unhandled']['id']} failed (1 failed, 1 skipped, "
        "2 succeeded): step divide failed: division by zero"
    )
    assert {r["playbook"] for r in runs_of(api, bad)} == {"record", "unhandled"}


# -- triggers ---------------------------------------------------------------------------------

FILTERED = """\
title: Filtered
trigger:
  source: wazuh
  groups: [sshd, web]
  min_level: 8
  max_level: 12
  rule_ids: ["5712", "5710"]
  if: ${{ TRIGGER.data.data.srcip != '198.51.100.9' }}
actions:
  - ref: a
    action: core.transform.reshape
    args: {value: 1}
"""
EVERYTHING = """\
title: Everything
actions:
  - ref: a
    action: core.transform.reshape
    args: {value: "${{ TRIGGER.alert.rule_id }}"}
"""
NORMALISED_IF = """\
title: Normalised condition
trigger:
  if: ${{ TRIGGER.alert.level >= 10 && TRIGGER.case.opened_by_alert }}
actions:
  - ref: a
    action: core.transform.reshape
    args: {value: 1}
"""
FAILING_IF = """\
title: Trigger condition that cannot be evaluated
trigger:
  if: ${{ TRIGGER.data.data.srcip / 2 }}
actions:
  - ref: a
    action: core.transform.reshape
    args: {value: 1}
"""


def ingest(api: Any, path: Path, *alerts: dict[str, Any]) -> list[int]:
    """File intake (as the tailer stores them: header only, normalised by folding)."""
    path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
    assert ingest_files([path], api.runtime.writer).stored == len(alerts)
    with api.runtime.engine.connect() as conn:
        ids = dict(conn.execute(select(alerts_table.c.source_id, alerts_table.c.id)).all())
    return [ids[a["id"]] for a in alerts]


@pytest.mark.parametrize("via", ["http", "file"])
def test_triggers_match_only_the_right_alerts(api_factory, tmp_path, via):
    api = make_api(
        api_factory,
        tmp_path,
        {
            "filtered": FILTERED,
            "everything": EVERYTHING,
            "normalised": NORMALISED_IF,
            "failing_if": FAILING_IF,
        },
    )
    alerts = {
        "match": sshd_alert(1, srcip="203.0.113.1", level=10),
        "low_bound": sshd_alert(2, srcip="203.0.113.2", level=8, rule_id="5710"),
        "too_low": sshd_alert(3, srcip="203.0.113.3", level=7),
        "too_high": sshd_alert(4, srcip="203.0.113.4", level=13),
        "other_rule": sshd_alert(5, srcip="203.0.113.5", level=10, rule_id="5763"),
        "excluded_by_if": sshd_alert(6, srcip="198.51.100.9", level=10),
        "joined": sshd_alert(7, srcip="203.0.113.1", level=10, minutes=1),
        "fim": fim_alert(1),
    }
    stored = (
        post(api, *alerts.values())
        if via == "http"
        else ingest(api, tmp_path / "alerts.json", *alerts.values())
    )
    ids = dict(zip(alerts, stored, strict=True))
    process(api)
    ran = {name: sorted(r["playbook"] for r in runs_of(api, i)) for name, i in ids.items()}
    assert ran == {
        "match": ["everything", "filtered", "normalised"],
        "low_bound": ["everything", "filtered"],
        "too_low": ["everything"],
        "too_high": ["everything", "normalised"],
        "other_rule": ["everything", "normalised"],
        "excluded_by_if": ["everything", "normalised"],
        "joined": ["everything", "filtered"],  # joined its case: opened_by_alert is false
        "fim": ["everything"],  # level 5, group syscheck
    }
    [everything] = [r for r in runs_of(api, ids["other_rule"]) if r["playbook"] == "everything"]
    assert steps(everything)["a"]["result"] == "5763"


# -- create_case and upsert_case composing with folding ------------------------------------------

CREATE = """\
title: Create a case
trigger: {groups: [sshd]}
actions:
  - ref: open
    action: cases.create_case
    args:
      summary: "Playbook: SSH attack from ${{ TRIGGER.data.data.srcip }}"
      description: Opened by the playbook
      priority: high
      severity: critical
      tags: [from-playbook]
  - ref: comment
    action: cases.create_comment
    depends_on: [open]
    args:
      case_id: ${{ ACTIONS.open.result.id }}
      content: "folded=${{ ACTIONS.open.result.folded }}"
"""


def test_create_case_on_the_alert_that_opened_its_case_applies_to_that_case(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"create": CREATE})
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    [only] = all_cases(api)
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded" and run["case"] == only["ref"]
    result = steps(run)["open"]["result"]
    assert result["id"] == only["id"] and result["folded"] is False
    got = case(api, only["ref"])
    assert got["summary"] == "Playbook: SSH attack from 203.0.113.7"
    assert got["description"] == "Opened by the playbook"
    assert (got["priority"], got["severity"]) == ("high", "critical")
    assert {"bruteforce", "from-playbook"} <= set(got["tags"])  # the fold's tag is kept
    assert got["fold"]["rule"] == "auth-bruteforce"
    assert [c["content"] for c in got["comments"]] == ["folded=false"]
    assert got["comments"][0]["author"] == "playbook:create"


def test_create_case_on_an_alert_that_joined_a_case_returns_it_and_opens_nothing(
    api_factory, tmp_path
):
    api = make_api(api_factory, tmp_path, {"create": CREATE})
    [first] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    [opened] = all_cases(api)
    [second, third] = post(
        api,
        sshd_alert(2, srcip="203.0.113.7", minutes=1),
        sshd_alert(3, srcip="203.0.113.7", minutes=2),
    )
    process(api)
    assert [c["id"] for c in all_cases(api)] == [opened["id"]]
    for alert_id in (second, third):
        run = the_run(api, alert_id)
        assert run["status"] == "succeeded" and run["case"] == opened["ref"]
        result = steps(run)["open"]["result"]
        assert result["id"] == opened["id"] and result["folded"] is True
    got = case(api, opened["ref"])
    assert got["alert_count"] == 3
    assert got["summary"] == "Playbook: SSH attack from 203.0.113.7"  # set by the first run only
    assert sorted(c["content"] for c in got["comments"]) == [
        "folded=false",
        "folded=true",
        "folded=true",
    ]
    # each run is on the case's timeline, and says where its alert went
    runs = [e for e in timeline(api, opened["ref"]) if e["kind"] == "playbook_run"]
    assert sorted(e["detail"]["alert_id"] for e in runs) == sorted([first, second, third])
    assert the_run(api, first)["case"] == opened["ref"]


NOTHING_FOLDS = """\
rules:
  - name: nothing
    match: {groups: [no-such-group]}
    key: [data.srcip]
    window: 1h
"""


def test_create_case_on_an_alert_no_rule_folded_opens_a_new_case(api_factory, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(NOTHING_FOLDS)
    # no background runner: the state between folding and the run can be looked at
    api = make_api(
        api_factory, tmp_path, {"create": CREATE}, folding_rules=rules, playbook_workers=0
    )
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    api.fold()
    assert all_cases(api) == []
    unmatched = api.get(URL.removesuffix("/wazuh"), params={"state": "unmatched"}).json()
    assert [a["id"] for a in unmatched["items"]] == [alert_id]
    api.runtime.playbooks.drain()
    [opened] = all_cases(api)
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded" and run["case"] == opened["ref"]
    assert steps(run)["open"]["result"]["id"] == opened["id"]
    assert steps(run)["open"]["result"]["folded"] is False
    got = case(api, opened["ref"])
    assert got["summary"] == "Playbook: SSH attack from 203.0.113.7"
    assert (got["priority"], got["severity"]) == ("high", "critical")
    assert [c["content"] for c in got["comments"]] == ["folded=false"]
    assert any(e["kind"] == "playbook_run" for e in timeline(api, opened["ref"]))


UPSERT = """\
title: Upsert by rule
trigger: {groups: [sshd]}
actions:
  - ref: upsert
    action: cases.upsert_case
    args:
      key: "rule-${{ TRIGGER.data.rule.id }}"
      summary: "Rule ${{ TRIGGER.data.rule.id }}"
      priority: medium
"""


def test_upsert_case_with_the_same_key_makes_one_case(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"upsert": UPSERT})
    # different sources (two folding cases), one rule: one upserted case
    first, second = post(
        api, sshd_alert(1, srcip="203.0.113.7"), sshd_alert(2, srcip="203.0.113.8")
    )
    process(api)
    [third] = post(api, sshd_alert(3, srcip="203.0.113.9", minutes=5))
    process(api)
    upserted = [c for c in all_cases(api) if c["fold"]["rule"] == "playbook:upsert"]
    assert len(upserted) == 1, upserted
    assert upserted[0]["fold"]["key"] == "rule-5712"
    assert upserted[0]["summary"] == "Rule 5712" and upserted[0]["priority"] == "medium"
    results = [steps(the_run(api, a))["upsert"]["result"] for a in (first, second, third)]
    assert {r["id"] for r in results} == {upserted[0]["id"]}
    assert sorted(r["created"] for r in results) == [False, False, True]
    assert len(all_cases(api)) == 4  # three folding cases and the upserted one


# -- the library --------------------------------------------------------------------------------

EVOLVING = """\
title: Evolving
trigger: {groups: [sshd]}
actions:
  - ref: mark
    action: core.transform.reshape
    args: {value: VALUE}
"""


def test_a_broken_file_never_replaces_the_last_good_version(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"evolving": EVOLVING.replace("VALUE", "good")})
    library = api.runtime.library
    path = tmp_path / "pb" / "evolving.yml"
    good = library.get("evolving")
    assert good is not None and library.errors == {}
    [a1] = post(api, sshd_alert(1, srcip="203.0.113.1"))
    process(api)
    assert steps(the_run(api, a1))["mark"]["result"] == "good"

    path.write_text(EVOLVING.replace("VALUE", '"${{ TRIGGER.data. + }}"'))
    library.reload()
    problems = library.errors[str(path)]
    assert problems and problems[0].line == 6 and "mark.args" in problems[0].message
    assert library.get("evolving") == good  # still the good version

    [a2] = post(api, sshd_alert(2, srcip="203.0.113.2"))
    process(api)
    run = the_run(api, a2)
    assert run["status"] == "succeeded" and run["version"] == good.version
    assert steps(run)["mark"]["result"] == "good"

    path.write_text(EVOLVING.replace("VALUE", "better-fixed"))
    library.reload()
    assert str(path) not in library.errors
    [a3] = post(api, sshd_alert(3, srcip="203.0.113.3"))
    process(api)
    run = the_run(api, a3)
    assert run["version"] != good.version and steps(run)["mark"]["result"] == "better-fixed"


def test_a_file_broken_from_the_start_is_reported_and_never_runs(api_factory, tmp_path):
    broken = EVOLVING.replace("VALUE", "x").replace("core.transform.reshape", "core.no_such")
    api = make_api(api_factory, tmp_path, {"broken": broken, "record": RECORDED})
    library = api.runtime.library
    [problem] = library.errors[str(tmp_path / "pb" / "broken.yml")]
    assert "unknown action 'core.no_such'" in problem.message and problem.line == 5
    assert library.get("broken") is None
    [alert_id] = post(api, sshd_alert(1))
    process(api)
    assert [r["playbook"] for r in runs_of(api, alert_id)] == ["record"]


# -- HTTP: the SSRF guard, retry ------------------------------------------------------------------

HTTP = """\
title: Call home
trigger: {groups: [sshd]}
actions:
  - ref: call
    action: core.http_request
    args:
      url: "ECHO/hello"
      method: POST
      payload: {ip: "${{ TRIGGER.data.data.srcip }}"}
"""


def test_http_to_loopback_is_refused_by_the_ssrf_guard(api_factory, tmp_path, echo):
    api = make_api(api_factory, tmp_path, {"call": HTTP.replace("ECHO", echo.url)})
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    run = the_run(api, alert_id)
    assert run["status"] == "failed"
    call = steps(run)["call"]
    assert call["status"] == "failed" and "http_allow_networks" in call["error"]
    assert "127.0.0.1" in call["error"]
    assert echo.requests == []


def test_http_to_an_allowed_network_is_made(api_factory, tmp_path, echo):
    api = make_api(
        api_factory,
        tmp_path,
        {"call": HTTP.replace("ECHO", echo.url)},
        http_allow_networks=["127.0.0.0/8"],
    )
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded", run
    result = steps(run)["call"]["result"]
    assert result["status_code"] == 200
    assert result["data"] == {
        "method": "POST",
        "path": "/hello",
        "query": {},
        "json": {"ip": "203.0.113.7"},
        "n": 1,
    }
    assert echo.calls("/hello") == 1


TWO_CALLS = """\
title: Two calls
trigger: {groups: [sshd]}
actions:
  - ref: first
    action: core.http_request
    args: {url: "ECHO/first"}
  - ref: second
    action: core.http_request
    depends_on: [first]
    args:
      url: "ECHO/second"
      method: POST
      payload: {seen: "${{ ACTIONS.first.result.data.n }}"}
"""


def test_retry_reruns_a_failed_run_without_repeating_succeeded_steps(api_factory, tmp_path, echo):
    api = make_api(
        api_factory,
        tmp_path,
        {"two": TWO_CALLS.replace("ECHO", echo.url)},
        http_allow_networks=["127.0.0.0/8"],
    )
    echo.statuses["/second"] = 400  # not retryable: the run fails at once
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    run = the_run(api, alert_id)
    assert run["status"] == "failed"
    assert steps(run)["first"]["status"] == "succeeded"
    assert steps(run)["second"]["status"] == "failed"
    assert "HTTP 400" in steps(run)["second"]["error"]
    assert (echo.calls("/first"), echo.calls("/second")) == (1, 1)

    echo.statuses["/second"] = 200
    assert api.post(f"/api/v1/runs/{run['id']}/retry").status_code == 202
    api.runtime.playbooks.drain()
    again = api.get(f"/api/v1/runs/{run['id']}").json()
    assert again["status"] == "succeeded" and again["error"] is None
    assert again["attempts"] == 2
    assert (echo.calls("/first"), echo.calls("/second")) == (1, 2)
    assert steps(again)["first"] == steps(run)["first"]  # the recorded step, untouched
    assert steps(again)["second"]["input"]["payload"] == {"seen": 1}
    assert steps(again)["second"]["result"]["data"]["n"] == 2
    assert api.post("/api/v1/runs/999999/retry").status_code == 404


def test_retry_needs_write_permission(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"record": RECORDED})
    [alert_id] = post(api, sshd_alert(1))
    process(api)
    run = the_run(api, alert_id)
    api.tokens["viewer"] = api.runtime.writer.run(
        lambda conn: create_token(conn, "test-viewer", Role.VIEWER)
    )
    assert api.post(f"/api/v1/runs/{run['id']}/retry", role="viewer").status_code == 403
    assert api.get(f"/api/v1/runs/{run['id']}", role="viewer").status_code == 200


# -- a runner that crashes mid-run -----------------------------------------------------------------

COMMENT = """\
title: Comment once
trigger: {groups: [sshd]}
actions:
  - ref: note
    action: core.transform.reshape
    args: {value: "${{ TRIGGER.data.data.srcip }}"}
  - ref: comment
    action: cases.create_comment
    depends_on: [note]
    args:
      case_id: ${{ TRIGGER.case.id }}
      content: "seen ${{ ACTIONS.note.result }}"
"""


def test_runs_of_a_crashed_runner_complete_exactly_once(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"comment": COMMENT}, playbook_workers=0)
    ips = [f"203.0.113.{i}" for i in range(1, 6)]
    alert_ids = post(api, *(sshd_alert(i, srcip=ip) for i, ip in enumerate(ips)))
    api.fold()
    engine = api.runtime.playbooks

    # A runner claims every run, then dies before finishing any of them.
    claimed = api.runtime.writer.run(lambda conn: engine._claim(conn, 50))
    assert len(claimed) == len(ips)
    assert engine.run_once() == 0  # the leases hold: nobody else takes them yet
    for alert_id in alert_ids:
        assert the_run(api, alert_id)["status"] == "running"

    def expire(conn: Any) -> None:
        conn.execute(
            update(playbook_runs)
            .where(playbook_runs.c.id.in_([c.run_id for c in claimed]))
            .values(lease_until=datetime.now(UTC) - timedelta(minutes=1))
        )

    api.runtime.writer.run(expire)
    assert engine.drain() == len(ips)
    assert engine.drain() == 0  # nothing left, nothing done twice
    for alert_id, ip in zip(alert_ids, ips, strict=True):
        run = the_run(api, alert_id)
        assert run["status"] == "succeeded" and run["attempts"] == 2
        got = case(api, run["case"])
        assert [c["content"] for c in got["comments"]] == [f"seen {ip}"]
        events = [e for e in timeline(api, run["case"]) if e["kind"] == "playbook_run"]
        assert len(events) == 1
    with api.runtime.engine.connect() as conn:
        leases = conn.execute(select(playbook_runs.c.lease_until)).scalars().all()
    assert leases == [None] * len(ips)


def test_a_run_that_outlived_its_lease_is_recorded_only_by_the_runner_that_took_it_over(
    api_factory, tmp_path
):
    api = make_api(api_factory, tmp_path, {"comment": COMMENT}, playbook_workers=0)
    [alert_id] = post(api, sshd_alert(0, srcip="203.0.113.9"))
    api.fold()
    engine = api.runtime.playbooks
    [slow] = api.runtime.writer.run(lambda conn: engine._claim(conn, 50))

    def lease(until: datetime) -> None:
        api.runtime.writer.run(
            lambda conn: conn.execute(
                update(playbook_runs)
                .where(playbook_runs.c.id == slow.run_id)
                .values(lease_until=until)
            )
        )

    # While the first runner executes, its lease runs out and another runner claims the run.
    lease(datetime.now(UTC) + timedelta(minutes=5))
    engine._load([slow])
    outcomes = [engine._execute(slow)]
    api.runtime.writer.run(lambda conn: engine._flush(conn, outcomes))
    run = the_run(api, alert_id)
    assert run["status"] == "running"  # not recorded: it belongs to the other claim now
    assert case(api, run["case"])["comments"] == []  # and its case changes were not applied

    lease(datetime.now(UTC) - timedelta(minutes=1))  # that claim ends too; the run is taken again
    assert engine.drain() == 1
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded"
    assert [c["content"] for c in case(api, run["case"])["comments"]] == ["seen 203.0.113.9"]


def crash_mid_run(api: Any) -> list[Any]:
    """A runner claims every due run and executes it, then dies before recording anything;
    its leases are then made to expire. Returns what it had claimed."""
    engine = api.runtime.playbooks
    claimed = api.runtime.writer.run(lambda conn: engine._claim(conn, 50))
    engine._load(claimed)
    for run in claimed:
        engine._execute(run)

    def expire(conn: Any) -> None:
        conn.execute(
            update(playbook_runs)
            .where(playbook_runs.c.id.in_([c.run_id for c in claimed]))
            .values(lease_until=datetime.now(UTC) - timedelta(minutes=1))
        )

    api.runtime.writer.run(expire)
    return claimed


def test_case_changes_of_a_crashed_run_are_applied_once(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"comment": COMMENT}, playbook_workers=0)
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    api.fold()
    assert len(crash_mid_run(api)) == 1
    api.runtime.playbooks.drain()
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded" and run["attempts"] == 2
    assert [c["content"] for c in case(api, run["case"])["comments"]] == ["seen 203.0.113.7"]


def test_a_crashed_run_does_not_repeat_a_finished_http_call(api_factory, tmp_path, echo):
    api = make_api(
        api_factory,
        tmp_path,
        {"call": HTTP.replace("ECHO", echo.url)},
        playbook_workers=0,
        http_allow_networks=["127.0.0.0/8"],
    )
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    api.fold()
    crash_mid_run(api)
    assert echo.calls("/hello") == 1
    api.runtime.playbooks.drain()
    assert the_run(api, alert_id)["status"] == "succeeded"
    assert echo.calls("/hello") == 1


def test_a_crashed_run_does_not_open_a_second_case(api_factory, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(NOTHING_FOLDS)
    api = make_api(
        api_factory, tmp_path, {"create": CREATE}, folding_rules=rules, playbook_workers=0
    )
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    api.fold()
    crash_mid_run(api)
    api.runtime.playbooks.drain()
    assert the_run(api, alert_id)["status"] == "succeeded"
    assert len(all_cases(api)) == 1


# -- the engine and the runner's timers, retries and secrets ---------------------------------------


def test_a_retryable_http_failure_is_retried_by_the_engine(api_factory, tmp_path, echo):
    flaky = HTTP.replace("ECHO", echo.url).replace(
        "    action: core.http_request\n",
        "    action: core.http_request\n    retry_policy: {max_attempts: 3, backoff: 0}\n",
    )
    api = make_api(api_factory, tmp_path, {"call": flaky}, http_allow_networks=["127.0.0.0/8"])
    echo.statuses["/hello"] = [503, 429, 200]
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded", run
    call = steps(run)["call"]
    assert call["attempts"] == 3 and call["error"] is None
    assert call["result"]["data"]["n"] == 3
    assert echo.calls("/hello") == 3


def test_retries_exhausted_fail_the_run(api_factory, tmp_path, echo):
    flaky = HTTP.replace("ECHO", echo.url).replace(
        "    action: core.http_request\n",
        "    action: core.http_request\n    retry_policy: {max_attempts: 2, backoff: 0}\n",
    )
    api = make_api(api_factory, tmp_path, {"call": flaky}, http_allow_networks=["127.0.0.0/8"])
    echo.statuses["/hello"] = 503
    [alert_id] = post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    run = the_run(api, alert_id)
    assert run["status"] == "failed"
    assert steps(run)["call"]["attempts"] == 2 and "HTTP 503" in steps(run)["call"]["error"]
    assert echo.calls("/hello") == 2


DELAYED = """\
title: Delayed
trigger: {groups: [sshd]}
actions:
  - ref: now
    action: core.transform.reshape
    args: {value: 1}
  - ref: later
    action: core.transform.reshape
    depends_on: [now]
    start_delay: 1
    args: {value: "${{ ACTIONS.now.result + 1 }}"}
"""


def test_start_delay_keeps_the_run_queued_until_due(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"delayed": DELAYED})
    [alert_id] = post(api, sshd_alert(1))
    process(api)
    run = the_run(api, alert_id)
    if run["status"] == "queued":  # a slow machine may already be past the delay
        assert steps(run)["now"]["status"] == "succeeded"
        assert steps(run)["later"]["status"] == "waiting"
        assert run["finished_at"] is None
    deadline = time.monotonic() + 10
    while the_run(api, alert_id)["status"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.1)
        api.runtime.playbooks.drain()
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded"
    assert steps(run)["later"]["result"] == 2 and steps(run)["later"]["attempts"] == 1
    assert steps(run)["now"]["attempts"] == 1


SECRET_CALL = """\
title: Authenticated call
trigger: {groups: [sshd]}
actions:
  - ref: call
    action: core.http_request
    args:
      url: "ECHO/auth"
      headers: {Authorization: "Bearer ${{ SECRETS.api.KEY }}"}
      payload: {token: "${{ SECRETS.api.KEY }}"}
"""


def test_secrets_reach_the_request_but_never_the_record(api_factory, tmp_path, echo):
    secret = "engine-s3cret-value"
    api = make_api(
        api_factory,
        tmp_path,
        {"call": SECRET_CALL.replace("ECHO", echo.url)},
        http_allow_networks=["127.0.0.0/8"],
        secrets={"api": {"KEY": secret}},
    )
    [alert_id] = post(api, sshd_alert(1))
    process(api)
    [request] = echo.requests
    assert request["headers"]["Authorization"] == f"Bearer {secret}"
    assert request["json"] == {"token": secret}
    run = the_run(api, alert_id)
    assert run["status"] == "succeeded"
    call = steps(run)["call"]
    assert call["input"]["headers"] == {"Authorization": "Bearer ***"}
    assert call["result"]["data"]["json"] == {"token": "***"}
    assert secret not in api.get(f"/api/v1/runs/{run['id']}").text


APPEND = """\
title: Append to the description
trigger: {groups: [sshd]}
actions:
  - ref: note
    action: core.cases.update_case
    args:
      case_id: ${{ TRIGGER.case.id }}
      description: "source ${{ TRIGGER.data.data.srcip }} seen"
      append: true
      tags: [triaged]
"""


def test_update_case_appends_to_the_description_and_adds_tags(api_factory, tmp_path):
    api = make_api(api_factory, tmp_path, {"append": APPEND})
    post(api, sshd_alert(1, srcip="203.0.113.7"))
    process(api)
    [found] = all_cases(api)
    got = case(api, found["ref"])
    first_line = "Opened by folding rule auth-bruteforce for key 203.0.113.7."
    assert got["description"].startswith(first_line)
    assert got["description"].endswith("\nsource 203.0.113.7 seen")
    assert "triaged" in got["tags"] and "bruteforce" in got["tags"]  # added, none removed
    events = [
        e
        for e in api.get(f"/api/v1/cases/{found['ref']}/timeline").json()["items"]
        if e["actor"] == "playbook:append"
    ]
    assert {e["kind"] for e in events} >= {"description_changed", "tag_added"}
