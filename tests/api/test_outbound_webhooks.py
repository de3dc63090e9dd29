"""webhook.post through the outbox: signed as a Standard Webhook, retried while the receiver
fails, dead (with its reason) when refused, revived by POST /outbox/{id}/retry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fakes.base import FakeRequest, FakeServer, Reply
from support.alerts import sample

from casefold.signing import verify_standard

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "/api/v1/alerts/wazuh"


class Receiver(FakeServer):
    name = "webhook-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.script: list[int] = []
        self.accepted: list[dict[str, Any]] = []

    def handle(self, request: FakeRequest) -> Reply:
        status = self.script.pop(0) if self.script else 204
        if status == 204:
            msg_id = verify_standard(SECRET, request.headers, request.body, now=time.time())
            self.accepted.append({"id": msg_id, **request.json()})
        return Reply(status, None if status == 204 else {"error": "nope"})


PLAYBOOK = """\
title: Tell the SOAR
trigger:
  source: wazuh
actions:
  - ref: notify
    action: webhook.post
    args:
      url: {url}/hook
      type: casefold.alert
      secret: soar
      data:
        rule: ${{{{ TRIGGER.data.rule.id }}}}
        agent: ${{{{ TRIGGER.data.agent.name }}}}
"""


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def make(api_factory, tmp_path: Path, receiver: Receiver):
    books = tmp_path / "books"
    books.mkdir()
    (books / "notify.yml").write_text(PLAYBOOK.format(url=receiver.url))
    return api_factory(
        playbooks_dir=books,
        http_allow_networks=["127.0.0.0/8"],
        secrets={"soar": {"WEBHOOK_SECRET": SECRET}},
    )


def deliver(api) -> None:
    api.fold()
    api.runtime.playbooks.drain()
    api.runtime.sync.worker.drain()


def test_a_post_is_signed_and_delivered_once(api_factory, tmp_path, receiver):
    api = make(api_factory, tmp_path, receiver)
    api.post(URL, json=sample("sshd_bruteforce_nonexistent_user_5712.json"))
    deliver(api)
    [event] = receiver.accepted
    assert event["type"] == "casefold.alert" and event["data"]["rule"] == "5712"
    assert event["id"].startswith("msg_")
    [effect] = api.get("/api/v1/outbox").json()["items"]
    assert effect["state"] == "done" and effect["summary"] == "Webhook: done"
    api.runtime.sync.worker.drain()
    assert len(receiver.accepted) == 1


def test_failures_are_retried_then_refusal_is_dead_until_retried(api_factory, tmp_path, receiver):
    from datetime import UTC, datetime, timedelta

    api = make(api_factory, tmp_path, receiver)
    receiver.script = [503]
    api.post(URL, json=sample("sshd_bruteforce_nonexistent_user_5712.json"))
    deliver(api)
    [effect] = api.get("/api/v1/outbox").json()["items"]
    assert effect["state"] == "pending" and "503" in effect["last_error"]
    assert effect["summary"].startswith("Webhook: retry 2/8, next in")
    # time passes: the worker's clock moves past the back-off
    api.runtime.sync.worker.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)
    receiver.script = [400]
    api.runtime.sync.worker.drain()
    [effect] = api.get("/api/v1/outbox", params={"state": "dead"}).json()["items"]
    assert "400" in effect["last_error"] and not receiver.accepted
    r = api.post(f"/api/v1/outbox/{effect['id']}/retry")
    assert r.status_code == 202 and r.json()["state"] == "pending"
    api.runtime.sync.worker.drain()
    assert len(receiver.accepted) == 1
    assert api.post(f"/api/v1/outbox/{effect['id']}/retry").status_code == 409  # done now
    assert api.post("/api/v1/outbox/999/retry").status_code == 404


def test_private_urls_are_refused_unless_allowed(api_factory, tmp_path, receiver):
    books = tmp_path / "books"
    books.mkdir()
    (books / "notify.yml").write_text(PLAYBOOK.format(url=receiver.url))
    api = api_factory(playbooks_dir=books, secrets={"soar": {"WEBHOOK_SECRET": SECRET}})
    alert_id = api.post(URL, json=sample("sshd_bruteforce_nonexistent_user_5712.json")).json()[
        "results"
    ][0]["id"]
    deliver(api)
    [run] = api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"]
    [step] = run["steps"]
    assert step["status"] == "failed" and "http_allow_networks" in step["error"]
    assert not receiver.accepted and api.get("/api/v1/outbox").json()["items"] == []
