"""Signed webhooks that become alerts, through the running API: GitHub (X-Hub-Signature-256)
and a Standard Webhooks sender; bad signatures store nothing, redeliveries are duplicates, and
accepted events are also written as JSON lines for a Wazuh agent."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from unit.sources.test_github import LEAKED, secret_scanning

from casefold.signing import sign_github, sign_standard

GITHUB_SECRET = "It's a Secret to Everybody"
SIEM_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def hooks(api_factory, tmp_path):
    return api_factory(
        secrets={
            "github": {"WEBHOOK_SECRET": GITHUB_SECRET},
            "siem": {"WEBHOOK_SECRET": SIEM_SECRET},
        },
        webhook_sources={"siem": "siem"},
        webhook_events_file=tmp_path / "events.json",
    )


def github(api, doc: dict[str, Any], *, event: str, delivery: str, secret: str = GITHUB_SECRET):
    body = orjson.dumps(doc)
    return api.client.post(
        "/api/v1/alerts/github",
        content=body,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign_github(secret, body),
            "Content-Type": "application/json",
        },
    )


def alerts(api) -> list[dict[str, Any]]:
    return api.get("/api/v1/alerts", params={"source": "github"}).json()["items"]


def test_a_signed_github_event_is_stored_once_and_written_for_wazuh(hooks, tmp_path):
    r = github(hooks, secret_scanning(), event="secret_scanning_alert", delivery="d-1")
    assert r.status_code == 202 and r.json()["accepted"] == 1
    again = github(hooks, secret_scanning(), event="secret_scanning_alert", delivery="d-1")
    assert again.status_code == 202 and again.json()["duplicates"] == 1
    assert len(alerts(hooks)) == 1
    lines = (tmp_path / "events.json").read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["casefold"]["delivery"] == "d-1" and LEAKED not in lines[0]


def test_bad_or_missing_signatures_are_401_and_store_nothing(hooks):
    doc = secret_scanning()
    wrong = github(hooks, doc, event="secret_scanning_alert", delivery="d-2", secret="other")
    assert wrong.status_code == 401
    unsigned = hooks.client.post(
        "/api/v1/alerts/github", content=orjson.dumps(doc), headers={"X-GitHub-Event": "ping"}
    )
    assert unsigned.status_code == 401 and "X-Hub-Signature-256" in unsigned.text
    assert alerts(hooks) == []


def test_ping_is_acknowledged_and_stores_nothing(hooks):
    r = github(
        hooks, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping", delivery="d-3"
    )
    assert r.status_code == 202 and r.json()["ignored"] == "ping"
    assert alerts(hooks) == []


def standard(api, doc: dict[str, Any], msg_id: str, *, at: float | None = None):
    body = orjson.dumps(doc)
    ts = int(at if at is not None else time.time())
    return api.client.post(
        "/api/v1/alerts/webhook/siem",
        content=body,
        headers={
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign_standard(SIEM_SECRET, msg_id, ts, body),
            "Content-Type": "application/json",
        },
    )


def test_standard_webhooks_sender(hooks):
    doc = {
        "type": "siem.detection",
        "timestamp": "2026-11-22T10:00:00Z",
        "data": {
            "title": "Impossible travel",
            "severity": "high",
            "observables": [{"type": "ip", "value": "116.163.24.195"}],
        },
    }
    assert standard(hooks, doc, "msg_1").json()["accepted"] == 1
    assert standard(hooks, doc, "msg_1").json()["duplicates"] == 1  # a redelivery
    stale = standard(hooks, doc, "msg_2", at=time.time() - 3600)
    assert stale.status_code == 401 and "replay window" in stale.text
    stored = hooks.get("/api/v1/alerts", params={"source": "siem"}).json()["items"]
    assert len(stored) == 1
    unknown = hooks.client.post("/api/v1/alerts/webhook/nobody", content=b"{}")
    assert unknown.status_code == 401
