"""The case page and the alert page: what an analyst reads and changes there."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from support.alerts import sshd_alert
from support.web import PASSWORD, Web, build_web

from casefold.access import Role
from casefold.outbox import store as outbox_store
from casefold.store.tables import OUTBOX_DEAD, case_observables, outbox, playbook_runs


def _text(page: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _brute_force(web: Web, n: int = 3) -> None:
    web.post_alerts([sshd_alert(i, minutes=i) for i in range(n)])


def test_the_case_page_explains_how_alerts_folded_in(web: Web):
    _brute_force(web)
    web.signed_in()
    r = web.client.get("/cases/CASE-1")
    assert r.status_code == 200
    text = _text(r.text)
    assert "CASE-1 · Authentication attack from 203.0.113.7" in text
    assert "rule auth-bruteforce, key 203.0.113.7" in text
    assert "joined by rule auth-bruteforce, key 203.0.113.7, 3rd alert in 2 min" in text
    assert "Alert 1 folded in" in text and "Case opened" in text
    # Alerts, newest first, each with its raw JSON and a link to its own page.
    assert text.count("Raw JSON") == 3
    assert '"previous_output"' in html.unescape(r.text)
    assert 'href="/alerts/3"' in r.text
    # Observables from the alerts.
    assert "203.0.113.7" in text and "T1110" in text


def test_alert_data_is_escaped_never_run(web: Web):
    alert = sshd_alert(0)
    alert["rule"]["description"] = "<script>alert(1)</script>"
    alert["full_log"] = "</pre><img src=x onerror=alert(2)>"
    web.post_alerts([alert])
    web.signed_in()
    for path in ("/cases/CASE-1", "/alerts/1", "/"):
        page = web.client.get(path).text
        assert "<script>alert(1)" not in page and "<img src=x" not in page, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in web.client.get("/alerts/1").text


def test_editing_a_case_changes_only_what_differs_and_logs_it(web: Web):
    _brute_force(web, 1)
    csrf = web.signed_in()
    form = {
        "csrf_token": csrf,
        "version": "1",
        "summary": "Authentication attack from 203.0.113.7",
        "status": "in_progress",
        "severity": "high",
        "priority": "high",
        "assignee": "ana",
        "tags": "T1110, bruteforce, vip",
        "description": web.api("GET", "/api/v1/cases/CASE-1").json()["description"],
        "field_name": "ticket",
        "field_value": "INC-7",
    }
    r = web.client.post("/cases/CASE-1/edit", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/cases/CASE-1"
    case = web.api("GET", "/api/v1/cases/CASE-1").json()
    assert (case["status"], case["severity"], case["priority"], case["assignee"]) == (
        "in_progress",
        "high",
        "high",
        "ana",
    )
    assert "vip" in case["tags"] and case["fields"] == {"ticket": "INC-7"}
    events = web.api("GET", "/api/v1/cases/CASE-1/timeline").json()["items"]
    changed = {e["field"] for e in events if e["actor"] == "ana"}
    assert changed == {"status", "severity", "priority", "assignee", "tags", "fields"}
    page = _text(web.client.get("/cases/CASE-1").text)
    assert "Case saved." in page and "Status: new → in progress" in page and "ticket INC-7" in page


def test_a_stale_edit_is_refused_not_overwritten(web: Web):
    _brute_force(web, 1)
    csrf = web.signed_in()
    web.api("PATCH", "/api/v1/cases/CASE-1", json={"status": "on_hold"})  # someone else, meanwhile
    r = web.client.post(
        "/cases/CASE-1/edit", data={"csrf_token": csrf, "version": "1", "status": "closed"}
    )
    assert r.status_code == 409 and "changed by someone else" in r.text
    assert web.api("GET", "/api/v1/cases/CASE-1").json()["status"] == "on_hold"


def test_bad_edits_get_clear_pages(web: Web):
    _brute_force(web, 1)
    csrf = web.signed_in()
    post = web.client.post
    assert post("/cases/CASE-1/edit", data={"csrf_token": csrf, "status": "x"}).status_code == 422
    r = post("/cases/CASE-1/edit", data={"csrf_token": csrf, "version": "1", "status": "bogus"})
    assert r.status_code == 422 and "status" in r.text
    assert post("/cases/CASE-9/edit", data={"csrf_token": csrf, "version": "1"}).status_code == 404
    assert post("/cases/CASE-1/edit", data={"version": "1", "status": "closed"}).status_code == 403
    assert web.client.get("/cases/CASE-9").status_code == 404
    assert web.client.get("/cases/nonsense").status_code == 404
    assert web.client.get("/cases/CASE-1?before=x").status_code == 400
    assert web.api("GET", "/api/v1/cases/CASE-1").json()["status"] == "new"


def test_comments_are_added_and_shown_escaped(web: Web):
    _brute_force(web, 1)
    csrf = web.signed_in()
    r = web.client.post(
        "/cases/CASE-1/comments",
        data={"csrf_token": csrf, "content": "Blocked at the edge <b>twice</b>."},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/cases/CASE-1#comments"
    page = web.client.get("/cases/CASE-1").text
    assert "Blocked at the edge &lt;b&gt;twice&lt;/b&gt;." in page
    assert "Comment added" in _text(page)
    r = web.client.post("/cases/CASE-1/comments", data={"csrf_token": csrf, "content": "  "})
    assert r.status_code == 422
    assert len(web.api("GET", "/api/v1/cases/CASE-1").json()["comments"]) == 1


def test_a_viewer_reads_the_case_but_has_no_forms(web: Web):
    _brute_force(web, 1)
    web.create_user("vic", Role.VIEWER)
    web.sign_in(name="vic", password=PASSWORD)
    page = web.client.get("/cases/CASE-1").text
    assert "CASE-1" in page and 'action="/cases/CASE-1/edit"' not in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = web.client.post("/cases/CASE-1/comments", data={"csrf_token": csrf, "content": "hi"})
    assert r.status_code == 403


def test_observables_show_verdicts_with_their_provenance(web: Web):
    _brute_force(web, 1)
    web.signed_in()
    verdicts = {
        "crowdsec": {
            "verdict": "malicious",
            "found": True,
            "score": 4,
            "summary": "ssh:bruteforce",
            "provider": "crowdsec",
            "fetched_at": "2026-11-22T10:00:00+00:00",
            "from_cache": True,
        }
    }
    web.runtime.writer.run(
        lambda conn: conn.execute(
            update(case_observables)
            .where(case_observables.c.value == "203.0.113.7")
            .values(verdicts=verdicts, verdict="malicious", enriched_at=datetime.now(UTC))
        )
    )
    text = _text(web.client.get("/cases/CASE-1").text)
    assert "crowdsec : malicious score 4 · ssh:bruteforce" in text
    assert "cached, fetched 2026-11-22 10:00:00 UTC" in text


def test_outbox_states_show_and_a_dead_effect_can_be_retried(web: Web):
    _brute_force(web, 1)
    csrf = web.signed_in()

    def dead(conn):
        outbox_store.enqueue(
            conn, [outbox_store.Effect("jira", "jira.create", "jira:1", "k-1", {}, case_id=1)]
        )
        conn.execute(
            update(outbox).values(state=OUTBOX_DEAD, attempts=8, last_error="HTTP 400: bad project")
        )

    web.runtime.writer.run(dead)
    page = _text(web.client.get("/cases/CASE-1").text)
    assert "Jira create: failed after 8 attempt(s): HTTP 400: bad project" in page
    effect_id = web.api("GET", "/api/v1/outbox").json()["items"][0]["id"]
    r = web.client.post(
        f"/outbox/{effect_id}/retry",
        data={"csrf_token": csrf, "back": "/cases/CASE-1#sync"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/cases/CASE-1#sync"
    state = web.api("GET", "/api/v1/outbox").json()["items"][0]
    assert state["attempts"] <= 1 and state["state"] != OUTBOX_DEAD
    assert web.client.post("/outbox/999/retry", data={"csrf_token": csrf}).status_code == 404
    # An effect of no case (a playbook's webhook) goes back to the queue.
    web.runtime.writer.run(lambda conn: conn.execute(update(outbox).values(case_id=None)))
    r = web.client.post(
        f"/outbox/{effect_id}/retry", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_playbook_runs_show_their_step_traces(web: Web):
    _brute_force(web, 1)
    web.signed_in()
    now = datetime.now(UTC)
    steps = [
        {
            "ref": "lookup_ip",
            "action": "cti.crowdsec.lookup_ip",
            "status": "succeeded",
            "attempts": 1,
            "duration_ms": 41,
            "input": {"ip_address": "203.0.113.7"},
            "result": {"reputation": "malicious"},
        },
        {
            "ref": "open_ticket",
            "action": "webhook.post",
            "status": "failed",
            "attempts": 3,
            "error": "HTTP 503 from ticketing",
        },
    ]
    web.runtime.writer.run(
        lambda conn: conn.execute(
            insert(playbook_runs).values(
                alert_id=1,
                case_id=1,
                playbook="triage",
                version="v1",
                status="failed",
                created_at=now,
                not_before=now,
                attempts=1,
                steps=steps,
                error="step open_ticket",
            )
        )
    )
    for path in ("/cases/CASE-1", "/alerts/1"):
        text = _text(web.client.get(path).text)
        assert "failed triage" in text, path
        assert "lookup_ip cti.crowdsec.lookup_ip succeeded 1 41" in text
        assert "HTTP 503 from ticketing" in text
        assert '"reputation": "malicious"' in text


@pytest.fixture
def web_approval(tmp_path: Path, database_url: str | None) -> Iterator[Web]:
    yield from build_web(
        tmp_path, database_url, "http://testserver", response={"require_approval": True}
    )


def _awaiting(web: Web, target: str) -> int:
    return web.runtime.writer.run(
        lambda conn: web.runtime.responses.request(
            conn,
            action="firewall.block_ip",
            target=target,
            params={"ip_address": target},
            case_id=1,
            alert_id=1,
            actor="playbook:block",
        )
    )["id"]


def test_responses_waiting_for_approval_are_approved_or_rejected(web_approval: Web):
    web = web_approval
    _brute_force(web, 1)
    csrf = web.signed_in()
    first, second = _awaiting(web, "203.0.113.7"), _awaiting(web, "198.51.100.4")
    page = web.client.get("/cases/CASE-1").text
    assert f'action="/responses/{first}/approve"' in page
    assert "awaiting approval" in _text(page)
    r = web.client.post(
        f"/responses/{first}/approve",
        data={"csrf_token": csrf, "back": "/cases/CASE-1#responses"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/cases/CASE-1#responses"
    web.client.post(
        f"/responses/{second}/reject", data={"csrf_token": csrf, "reason": "our NAT gateway"}
    )
    states = {
        i["id"]: (i["state"], i["decided_by"])
        for i in web.api("GET", "/api/v1/responses").json()["items"]
    }
    assert states[second] == ("rejected", "ana")
    assert states[first][0] != "awaiting_approval" and states[first][1] == "ana"
    page = web.client.get("/cases/CASE-1").text
    assert f'action="/responses/{first}/approve"' not in page
    # Deciding twice is a conflict, not a crash.
    r = web.client.post(f"/responses/{second}/approve", data={"csrf_token": csrf})
    assert r.status_code == 409


def test_the_alert_page_shows_the_normalised_view_and_raw_json(web: Web):
    _brute_force(web, 1)
    web.signed_in()
    r = web.client.get("/alerts/1")
    text = _text(r.text)
    assert r.status_code == 200 and "CASE-1" in text and '"rule_id": "5712"' in text
    assert '"full_log"' in text
    assert web.client.get("/alerts/999").status_code == 404


def test_long_cases_show_the_newest_entries_with_links_to_older_ones(web: Web, monkeypatch):
    from casefold.web import case_page

    monkeypatch.setattr(case_page, "ALERTS_SHOWN", 2)
    monkeypatch.setattr(case_page, "EVENTS_SHOWN", 2)
    _brute_force(web, 5)
    web.signed_in()
    page = web.client.get("/cases/CASE-1").text
    assert _text(page).count("Raw JSON") == 2
    older = re.search(r'href="(/cases/CASE-1\?alerts_after=[^"#]+)', page).group(1)
    rest = web.client.get(html.unescape(older)).text
    assert 'href="/alerts/3"' in rest and 'href="/alerts/5"' not in rest
    before = re.search(r'href="(/cases/CASE-1\?before=\d+)', page).group(1)
    assert "Alert 3 folded in" in _text(web.client.get(before).text)
