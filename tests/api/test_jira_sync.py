"""Cases and Jira issues in sync, against the Jira fake on 127.0.0.1: an issue per case at or
above the severity threshold, comments, transitions and assignees mirrored through the outbox,
Jira's webhooks and the reconcile bringing changes back, no echo, and exactly one issue per case
when Jira fails after acting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.jira import ALICE, AUTOMATION, DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake

from casefold.cases import service
from casefold.cases.bulk import CaseOp, apply_ops

WEBHOOK_SECRET = "jira-webhook-secret"


@pytest.fixture
def jira():
    with JiraFake(page_size=50) as fake:
        yield fake


@pytest.fixture
def synced(api_factory, jira: JiraFake):
    return api_factory(
        jira={
            "url": jira.url,
            "project": "SEC",
            "min_severity": "high",
            "assignee_map": {"alice": ALICE.account_id},
            "account_id": AUTOMATION.account_id,
            "reconcile_seconds": 0,
        },
        secrets={
            "jira": {
                "EMAIL": DEFAULT_EMAIL,
                "API_TOKEN": DEFAULT_TOKEN,
                "WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
        },
    )


def open_case(api, severity: str = "high", summary: str = "Beacon from WS-0042") -> int:
    return api.runtime.writer.run(
        lambda conn: service.open_case(
            conn, summary=summary, severity=severity, priority="high", actor="alice"
        )
    )


def change(api, case_id: int, actor: str = "alice", **values: Any) -> None:
    api.runtime.writer.run(
        lambda conn: apply_ops(
            conn, [CaseOp("update", case_id, actor, values=values)], datetime.now(UTC)
        )
    )


def deliver(api) -> None:
    api.runtime.sync.worker.drain()


def later(api, minutes: float = 10) -> None:
    """Move the outbox worker's clock past the back-off."""
    worker = api.runtime.sync.worker
    current = worker.clock()
    worker.clock = lambda: current + timedelta(minutes=minutes)


def the_issue(jira: JiraFake):
    [issue] = jira.issues.values()
    return issue


def test_a_high_case_opens_one_issue_and_the_case_links_to_it(synced, jira):
    case_id = open_case(synced)
    open_case(synced, severity="low", summary="noise")
    deliver(synced)
    issue = the_issue(jira)
    assert f"casefold-case-{case_id}" in issue.labels and "casefold" in issue.labels
    assert issue.fields["summary"].startswith(f"[CASE-{case_id}] Beacon from WS-0042")
    assert issue.fields["priority"] == {"name": "High"}
    case = synced.get(f"/api/v1/cases/CASE-{case_id}").json()
    assert case["links"] == [
        {"target": "jira", "id": issue.key, "url": f"{jira.url}/browse/{issue.key}"}
    ]
    assert case["fields"]["jira_issue"] == issue.key
    assert [e["summary"] for e in case["effects"]] == ["Jira create: done"]


def test_comments_status_and_assignee_follow_in_order(synced, jira):
    case_id = open_case(synced)
    synced.post(f"/api/v1/cases/CASE-{case_id}/comments", json={"content": "looking into it"})
    synced.patch(
        f"/api/v1/cases/CASE-{case_id}", json={"status": "in_progress", "assignee": "alice"}
    )
    deliver(synced)
    issue = the_issue(jira)
    assert [c.text for c in issue.comments][0].startswith("looking into it")
    assert issue.status == "In Progress"
    assert issue.assignee == ALICE.account_id
    synced.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "resolved"})
    deliver(synced)
    assert the_issue(jira).status == "Done"
    assert jira.count_created() == 1


def test_jira_changes_come_back_and_do_not_echo(synced, jira):
    case_id = open_case(synced)
    deliver(synced)
    issue = the_issue(jira)
    jira.set_status(issue.key, "In Progress")
    body, headers = jira.webhook_request(
        "jira:issue_updated",
        issue.key,
        secret=WEBHOOK_SECRET,
        changes={"status": ("To Do", "In Progress")},
        user=ALICE,
    )
    r = synced.client.post("/api/v1/webhooks/jira", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["changed"] == ["status"]
    again = synced.client.post("/api/v1/webhooks/jira", content=body, headers=headers)
    assert again.json() == {"duplicate": True}
    jira.comment_as(issue.key, "the user confirmed it was them", user=ALICE)
    body, headers = jira.webhook_request(
        "comment_created",
        issue.key,
        secret=WEBHOOK_SECRET,
        comment="the user confirmed it was them",
        user=ALICE,
    )
    assert (
        synced.client.post("/api/v1/webhooks/jira", content=body, headers=headers).status_code
        == 200
    )
    case = synced.get(f"/api/v1/cases/CASE-{case_id}").json()
    assert case["status"] == "in_progress"
    assert [c["content"] for c in case["comments"]] == ["the user confirmed it was them"]
    assert case["comments"][0]["author"] == "jira:Alice"
    deliver(synced)
    # nothing went back to Jira: no transition, no comment
    assert [c.text for c in the_issue(jira).comments] == ["the user confirmed it was them"]
    kinds = [e["kind"] for e in case["effects"]]
    assert kinds == ["jira.create"]


def test_bad_webhook_signature_is_401_and_changes_nothing(synced, jira):
    case_id = open_case(synced)
    deliver(synced)
    issue = the_issue(jira)
    body, headers = jira.webhook_request(
        "jira:issue_updated", issue.key, secret="wrong", changes={"status": ("To Do", "Done")}
    )
    r = synced.client.post("/api/v1/webhooks/jira", content=body, headers=headers)
    assert r.status_code == 401
    assert synced.get(f"/api/v1/cases/CASE-{case_id}").json()["status"] == "new"


def test_reconcile_catches_a_missed_webhook(synced, jira):
    case_id = open_case(synced)
    deliver(synced)
    jira.set_status(the_issue(jira).key, "Done")  # no webhook arrives
    assert synced.runtime.sync.reconcile() == 1
    assert synced.get(f"/api/v1/cases/CASE-{case_id}").json()["status"] == "resolved"
    assert synced.runtime.sync.reconcile() == 0
    deliver(synced)
    assert jira.count_created() == 1


@pytest.mark.parametrize("failure", [500, "reset"])
def test_jira_acting_then_failing_still_makes_one_issue(synced, jira, failure):
    jira.fail_after_commit(1, failure)  # Jira creates it, the answer is lost
    case_id = open_case(synced)
    deliver(synced)
    assert jira.count_created() == 1
    [effect] = synced.get(f"/api/v1/cases/CASE-{case_id}").json()["effects"]
    assert effect["state"] == "pending" and effect["summary"].startswith("Jira create: retry 2/8")
    later(synced)
    deliver(synced)
    assert jira.count_created() == 1 and len(jira.issues) == 1
    case = synced.get(f"/api/v1/cases/CASE-{case_id}").json()
    assert case["effects"][0]["result"]["existing"] is True
    assert case["links"][0]["id"] == the_issue(jira).key


def test_a_refused_issue_is_dead_with_the_reason(api_factory, jira):
    api = api_factory(
        jira={"url": jira.url, "project": "NOPE", "reconcile_seconds": 0},
        secrets={"jira": {"EMAIL": DEFAULT_EMAIL, "API_TOKEN": DEFAULT_TOKEN}},
    )
    case_id = open_case(api)
    deliver(api)
    [effect] = api.get("/api/v1/outbox", params={"case": case_id}).json()["items"]
    assert effect["state"] == "dead" and "400" in effect["last_error"]
    assert DEFAULT_TOKEN not in effect["last_error"]


def test_server_data_center_with_rest_v2_and_a_pat(api_factory):
    from fakes.jira import DEFAULT_PAT

    with JiraFake(mode="dc", page_size=50) as dc:
        api = api_factory(
            jira={"url": dc.url, "api_version": 2, "project": "SEC", "reconcile_seconds": 0},
            secrets={"jira": {"PAT": DEFAULT_PAT}},
        )
        case_id = open_case(api)
        api.post(f"/api/v1/cases/CASE-{case_id}/comments", json={"content": "plain text here"})
        api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "resolved"})
        deliver(api)
        [issue] = dc.issues.values()
        assert isinstance(issue.fields["description"], str)  # wiki text, not ADF
        assert issue.comments[0].body.startswith("plain text here")
        assert issue.status == "Done"
        # a lost answer on DC: the v2 search finds the issue, nothing is made twice
        dc.fail_after_commit(1, 500)
        second = open_case(api, summary="another")
        deliver(api)
        later(api)
        deliver(api)
        assert dc.count_created() == 2
        links = api.get(f"/api/v1/cases/CASE-{second}").json()["links"]
        assert links[0]["id"] in dc.issues


def test_reconcile_brings_missed_comments_once(synced, jira):
    case_id = open_case(synced)
    synced.post(f"/api/v1/cases/CASE-{case_id}/comments", json={"content": "ours"})
    deliver(synced)
    key = the_issue(jira).key
    jira.comment_as(key, "seen from the helpdesk", user=ALICE)  # its webhook is lost
    assert synced.runtime.sync.reconcile() == 1
    assert synced.runtime.sync.reconcile() == 0
    # the webhook arrives late: the comment is not added twice
    body, headers = jira.webhook_request(
        "comment_created",
        key,
        secret=WEBHOOK_SECRET,
        comment="seen from the helpdesk",
        user=ALICE,
    )
    synced.client.post("/api/v1/webhooks/jira", content=body, headers=headers)
    comments = synced.get(f"/api/v1/cases/CASE-{case_id}").json()["comments"]
    assert [c["content"] for c in comments] == ["ours", "seen from the helpdesk"]
    assert comments[1]["author"] == "jira:Alice"
