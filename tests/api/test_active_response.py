"""Active response under policy, end to end against the firewall fake: a playbook asks to block
an attacker; the policy decides (never-act-on networks, cooldown, hourly budget, approval, dry
run); the block and its undo at the end of the TTL go through the outbox; every decision is on
the case's timeline and in the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.firewall import FirewallFake
from support.alerts import sshd_alert
from support.runs import only_run, post, process, steps_of

PLAYBOOK = """\
title: Block brute force
trigger:
  source: wazuh
actions:
  - ref: block
    action: firewall.block_ip
    args:
      ip_address: ${{ TRIGGER.data.data.srcip }}
      ttl: 600
      reason: brute force
"""


@pytest.fixture
def firewall():
    with FirewallFake() as fake:
        yield fake


def make(api_factory, tmp_path: Path, firewall: FirewallFake, **response: Any):
    books = tmp_path / "books"
    books.mkdir(exist_ok=True)
    (books / "block.yml").write_text(PLAYBOOK)
    return api_factory(
        playbooks_dir=books,
        response={
            "firewall_block_url": f"{firewall.url}/api/block",
            "firewall_unblock_url": f"{firewall.url}/api/block/{{ip}}",
            **response,
        },
        secrets={"firewall": {"API_TOKEN": firewall.token}},
    )


def deliver(api, *, at: datetime | None = None) -> None:
    worker = api.runtime.sync.worker
    if at is not None:
        worker.clock = lambda: at
    worker.drain()


def timeline_kinds(api, case_id: int) -> list[str]:
    items = api.get(f"/api/v1/cases/CASE-{case_id}/timeline").json()["items"]
    return [e["kind"] for e in items if e["kind"].startswith("response_")]


def the_response(api) -> dict[str, Any]:
    [response] = api.get("/api/v1/responses").json()["items"]
    return response


def test_block_then_undo_after_the_ttl(api_factory, tmp_path, firewall):
    api = make(api_factory, tmp_path, firewall)
    alert_id = post(api, sshd_alert(1, srcip="45.9.8.7"))
    process(api)
    step = steps_of(only_run(api, alert_id))["block"]
    assert step["status"] == "succeeded" and step["result"]["state"] == "queued"
    deliver(api)
    assert "45.9.8.7" in firewall.blocked
    response = the_response(api)
    assert response["state"] == "active" and response["expires_at"]
    # the TTL runs out (Casefold may have restarted meanwhile: the undo is in the store)
    deliver(api, at=datetime.now(UTC) + timedelta(minutes=11))
    assert "45.9.8.7" not in firewall.blocked
    response = the_response(api)
    assert response["state"] == "undone"
    case_id = response["case_id"]
    assert timeline_kinds(api, case_id) == [
        "response_queued",
        "response_executed",
        "response_undone",
    ]


def test_private_and_protected_addresses_are_refused_with_the_rule(api_factory, tmp_path, firewall):
    api = make(api_factory, tmp_path, firewall, protected_hosts=["45.1.1.0/24"])
    post(api, sshd_alert(1, srcip="10.1.2.3"))
    post(api, sshd_alert(2, srcip="45.1.1.9"))
    process(api)
    deliver(api)
    refused = api.get("/api/v1/responses", params={"state": "refused"}).json()["items"]
    assert {(r["target"], r["rule"]) for r in refused} == {
        ("10.1.2.3", "protected"),
        ("45.1.1.9", "protected"),
    }
    assert firewall.blocked == {}


def test_cooldown_and_hourly_budget(api_factory, tmp_path, firewall):
    api = make(api_factory, tmp_path, firewall, max_per_hour=2)
    for n, ip in enumerate(["45.9.8.7", "45.9.8.7", "45.9.8.8", "45.9.8.9"]):
        post(api, sshd_alert(n, srcip=ip, minutes=n * 400))  # separate cases
    process(api)
    deliver(api)
    states = [
        (r["target"], r["state"], r["rule"])
        for r in reversed(api.get("/api/v1/responses").json()["items"])
    ]
    assert states == [
        ("45.9.8.7", "active", None),
        ("45.9.8.7", "refused", "cooldown"),
        ("45.9.8.8", "active", None),
        ("45.9.8.9", "refused", "budget"),
    ]
    assert set(firewall.blocked) == {"45.9.8.7", "45.9.8.8"}


def test_approval_waits_for_an_analyst(api_factory, tmp_path, firewall):
    api = make(api_factory, tmp_path, firewall, require_approval=True)
    post(api, sshd_alert(1, srcip="45.9.8.7"))
    post(api, sshd_alert(2, srcip="45.9.8.8", minutes=400))
    process(api)
    deliver(api)
    waiting = api.get("/api/v1/responses", params={"state": "awaiting_approval"}).json()["items"]
    assert len(waiting) == 2 and firewall.blocked == {}
    first, second = sorted(waiting, key=lambda r: r["id"])
    assert api.post(f"/api/v1/responses/{first['id']}/approve", role="admin").status_code == 200
    rejected = api.post(f"/api/v1/responses/{second['id']}/reject", json={"reason": "a partner"})
    assert rejected.json()["state"] == "rejected" and rejected.json()["decided_by"] == "admin"
    deliver(api)
    assert set(firewall.blocked) == {"45.9.8.7"}
    again = api.post(f"/api/v1/responses/{second['id']}/approve")
    assert again.status_code == 409
    assert timeline_kinds(api, first["case_id"]) == [
        "response_awaiting_approval",
        "response_approved",
        "response_executed",
    ]


def test_an_unanswered_approval_expires(api_factory, tmp_path, firewall):
    api = make(api_factory, tmp_path, firewall, require_approval=True, approval_timeout_seconds=60)
    post(api, sshd_alert(1, srcip="45.9.8.7"))
    process(api)
    deliver(api, at=datetime.now(UTC) + timedelta(minutes=2))
    response = the_response(api)
    assert response["state"] == "expired" and firewall.blocked == {}
    assert "response_expired" in timeline_kinds(api, response["case_id"])


def test_dry_run_records_and_acts_on_nothing(api_factory, tmp_path, firewall):
    api = make(api_factory, tmp_path, firewall, dry_run=True)
    post(api, sshd_alert(1, srcip="45.9.8.7"))
    process(api)
    deliver(api)
    assert the_response(api)["state"] == "dry_run" and firewall.blocked == {}


AR_PLAYBOOK = """\
title: Drop the attacker on the agent
trigger:
  source: wazuh
actions:
  - ref: drop
    action: wazuh.active_response
    args:
      command: firewall-drop600
      target: ${{ TRIGGER.data.data.srcip }}
      agents: ${{ VARS.agents }}
"""


@pytest.mark.parametrize(("agents", "state"), [(["001", "003"], "done"), (["003"], "queued")])
def test_wazuh_active_response_reports_each_agent(api_factory, tmp_path, agents, state):
    from fakes.wazuh_api import WazuhAPIFake

    with WazuhAPIFake() as wazuh:
        books = tmp_path / "books"
        books.mkdir()
        (books / "drop.yml").write_text(AR_PLAYBOOK)
        api = api_factory(
            playbooks_dir=books,
            vars={"agents": agents},
            wazuh={"api_url": wazuh.url},
            secrets={
                "wazuh_api": {
                    "WAZUH_API_USERNAME": wazuh.username,
                    "WAZUH_API_PASSWORD": wazuh.password,
                }
            },
        )
        post(api, sshd_alert(1, srcip="45.9.8.7"))
        process(api)
        deliver(api)
        response = the_response(api)
        assert response["state"] == state
        if state == "done":
            assert response["result"]["affected"] == ["001"]
            assert response["result"]["failed"][0]["agent"] == "003"
            assert [c["agent"] for c in wazuh.active_responses] == ["001"]
        else:  # no agent could take it: the outbox tries again later
            [effect] = api.get("/api/v1/outbox").json()["items"]
            assert (
                effect["state"] == "pending" and "no agent took the command" in effect["last_error"]
            )


def test_the_undo_survives_a_restart(tmp_path, firewall):
    from casefold.config import Settings
    from casefold.runtime import Runtime

    settings = Settings(
        data_dir=tmp_path / "store",
        response={
            "firewall_block_url": f"{firewall.url}/api/block",
            "firewall_unblock_url": f"{firewall.url}/api/block/{{ip}}",
        },
        secrets={"firewall": {"API_TOKEN": firewall.token}},
    )
    first = Runtime(settings)
    first.start(folding=False)
    try:
        first.writer.run(
            lambda conn: first.responses.request(
                conn,
                action="firewall.block_ip",
                target="45.9.8.7",
                params={"reason": "test"},
                case_id=None,
                alert_id=None,
                actor="test",
                ttl=60,
            )
        )
        first.sync.worker.drain()
        assert "45.9.8.7" in firewall.blocked
    finally:
        first.stop()  # Casefold goes down while the block is on
    second = Runtime(settings)
    second.start(folding=False)
    try:
        second.sync.worker.clock = lambda: datetime.now(UTC) + timedelta(minutes=2)
        second.sync.worker.drain()
        assert "45.9.8.7" not in firewall.blocked
        with second.engine.connect() as conn:
            assert second.responses.get(conn, 1)["state"] == "undone"
    finally:
        second.stop()
