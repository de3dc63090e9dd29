"""The case queue: filters, sorting, pagination, bulk actions and live updates, as an analyst sees
them in the HTML."""

from __future__ import annotations

import re

from support.alerts import sshd_alert
from support.web import Web

from casefold.access import Role


def _refs(html: str) -> list[str]:
    """The case refs of the queue's rows, top to bottom."""
    return re.findall(r'<td class="ref"><a href="/cases/(CASE-\d+)">', html)


def _cases(web: Web, n: int) -> None:
    # One sshd brute force per source address: one case each.
    web.post_alerts([sshd_alert(i, srcip=f"203.0.113.{i + 1}", minutes=i) for i in range(n)])


def test_the_queue_lists_cases_with_their_facts(web: Web):
    _cases(web, 3)
    web.signed_in()
    r = web.client.get("/")
    assert r.status_code == 200
    assert _refs(r.text) == ["CASE-3", "CASE-2", "CASE-1"]
    assert "3 cases" in r.text
    assert "203.0.113.2" in r.text  # the summary names the attacker
    assert 'class="sev sev-' in r.text and 'class="status status-new"' in r.text
    assert '<link rel="stylesheet" href="/static/casefold.css">' in r.text
    assert web.client.get("/static/casefold.css").status_code == 200
    assert web.client.get("/static/queue.js").status_code == 200


def test_filters_narrow_the_queue_and_say_so(web: Web):
    _cases(web, 4)
    csrf = web.signed_in()
    web.api("PATCH", "/api/v1/cases/CASE-2", json={"status": "in_progress", "assignee": "bob"})
    web.api("PATCH", "/api/v1/cases/CASE-4", json={"severity": "critical", "tags": ["vip"]})
    assert csrf
    assert _refs(web.client.get("/?status=in_progress").text) == ["CASE-2"]
    assert _refs(web.client.get("/?assignee=bob").text) == ["CASE-2"]
    assert set(_refs(web.client.get("/?assignee=unassigned").text)) == {
        "CASE-1",
        "CASE-3",
        "CASE-4",
    }
    assert _refs(web.client.get("/?severity=critical").text) == ["CASE-4"]
    assert _refs(web.client.get("/?tag=vip").text) == ["CASE-4"]
    assert _refs(web.client.get("/?q=203.0.113.3").text) == ["CASE-3"]
    both = web.client.get("/?status=new&status=in_progress&sort=created_at").text
    assert _refs(both) == ["CASE-1", "CASE-2", "CASE-3", "CASE-4"]
    none = web.client.get("/?q=no-such-thing")
    assert _refs(none.text) == [] and "No case matches these filters." in none.text
    # The filter form shows what is applied.
    page = web.client.get("/?status=in_progress&q=ssh").text
    assert '<option value="in_progress" selected>' in page and 'value="ssh"' in page


def test_bad_filters_get_a_clear_page_not_a_crash(web: Web):
    web.signed_in()
    r = web.client.get("/?status=bogus")
    assert r.status_code == 422 and "status" in r.text
    r = web.client.get("/?sort=password")
    assert r.status_code == 400 and "Unknown sort" in r.text
    r = web.client.get("/?after=not-a-cursor")
    assert r.status_code == 422


def test_pages_follow_the_next_link_without_repeats(web: Web, monkeypatch):
    from casefold.web import queue

    monkeypatch.setattr(queue, "PAGE_SIZE", 2)
    _cases(web, 5)
    web.signed_in()
    seen: list[str] = []
    url = "/?sort=created_at"
    while url:
        html = web.client.get(url).text
        seen += _refs(html)
        m = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = m.group(1).replace("&amp;", "&") if m else ""
    assert seen == ["CASE-1", "CASE-2", "CASE-3", "CASE-4", "CASE-5"]
    # Counts: exact up to the cap; a text search only says whether more pages follow.
    assert 'id="count">5 cases</p>' in web.client.get("/?sort=created_at").text
    assert "2+ cases match" in web.client.get("/?q=authentication").text
    assert "1 case match" in web.client.get("/?q=203.0.113.3").text


def test_bulk_assign_and_status_change_every_selected_case(web: Web):
    _cases(web, 3)
    csrf = web.signed_in()
    r = web.client.post(
        "/cases/bulk",
        data={
            "csrf_token": csrf,
            "op": "assign",
            "assignee": "carol",
            "case": ["1", "3"],
            "back": "/?status=new",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/?status=new"
    after = web.client.get("/?status=new")
    assert "2 cases assigned to carol." in after.text  # the notice, shown once
    assert "assigned to carol" not in web.client.get("/").text
    assert set(_refs(web.client.get("/?assignee=carol").text)) == {"CASE-1", "CASE-3"}
    web.client.post(
        "/cases/bulk",
        data={"csrf_token": csrf, "op": "status", "status": "on_hold", "case": ["2", "3"]},
    )
    assert set(_refs(web.client.get("/?status=on_hold").text)) == {"CASE-2", "CASE-3"}
    # Each change is on the case's timeline, by the analyst.
    events = web.api("GET", "/api/v1/cases/CASE-3/timeline").json()["items"]
    changes = [(e["field"], e["new"], e["actor"]) for e in events if e["field"]]
    assert ("assignee", "carol", "ana") in changes and ("status", "on_hold", "ana") in changes


def test_bulk_refuses_bad_forms_and_changes_nothing(web: Web):
    _cases(web, 2)
    csrf = web.signed_in()
    for data, status in (
        ({"op": "status", "status": "on_hold", "case": ["1"]}, 403),  # no CSRF token
        ({"csrf_token": csrf, "op": "status", "status": "bogus", "case": ["1"]}, 422),
        ({"csrf_token": csrf, "op": "status", "status": "closed"}, 422),  # nothing selected
        ({"csrf_token": csrf, "op": "explode", "case": ["1"]}, 422),
        ({"csrf_token": csrf, "op": "status", "status": "closed", "case": ["1", "99"]}, 404),
    ):
        r = web.client.post("/cases/bulk", data=data)
        assert r.status_code == status, (data, r.text)
    assert _refs(web.client.get("/?status=new").text) == ["CASE-2", "CASE-1"]


def test_a_viewer_sees_the_queue_but_cannot_change_it(web: Web):
    _cases(web, 1)
    web.create_user("vic", Role.VIEWER)
    web.sign_in(name="vic", password="correct horse battery")
    html = web.client.get("/").text
    assert _refs(html) == ["CASE-1"] and 'id="bulk"' not in html and 'type="checkbox"' not in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = web.client.post(
        "/cases/bulk", data={"csrf_token": csrf, "op": "status", "status": "closed", "case": ["1"]}
    )
    assert r.status_code == 403
    assert _refs(web.client.get("/?status=new").text) == ["CASE-1"]


def test_bulk_back_link_never_leaves_the_site(web: Web):
    _cases(web, 1)
    csrf = web.signed_in()
    for back in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = web.client.post(
            "/cases/bulk",
            data={"csrf_token": csrf, "op": "assign", "assignee": "x", "case": ["1"], "back": back},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/", back


def test_live_returns_only_new_matching_cases_as_rows(web: Web):
    _cases(web, 2)
    web.signed_in()
    html = web.client.get("/?status=new").text
    max_id = int(re.search(r'data-max-id="(\d+)"', html).group(1))
    live_url = re.search(r'data-live="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert web.client.get(f"{live_url}&after_id={max_id}").json()["count"] == 0
    web.post_alerts([sshd_alert(10, srcip="198.51.100.9", minutes=30)])
    web.api("PATCH", "/api/v1/cases/CASE-1", json={"status": "closed"})
    got = web.client.get(f"{live_url}&after_id={max_id}").json()
    assert got["count"] == 1 and got["max_id"] == 3
    assert _refs(got["rows"]) == ["CASE-3"] and "198.51.100.9" in got["rows"]
    # A new case that does not match the queue's filters is not offered.
    assert web.client.get(f"/cases/live?status=closed&after_id={max_id}").json()["count"] == 0
    assert web.client.get("/cases/live?after_id=x").status_code == 422


def test_live_needs_a_session(web: Web):
    r = web.client.get("/cases/live?after_id=0", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_sla_badges_show_the_deadline_each_open_case_works_towards(web: Web):
    _cases(web, 3)
    web.signed_in()
    web.api("PATCH", "/api/v1/cases/CASE-1", json={"severity": "critical"})
    web.api("PATCH", "/api/v1/cases/CASE-2", json={"severity": "critical", "status": "in_progress"})
    web.api("PATCH", "/api/v1/cases/CASE-3", json={"status": "closed"})
    html = web.client.get("/").text
    rows = {
        m.group(2): m.group(1)
        for m in re.finditer(
            r'(<tr data-case="\d+">.*?href="/cases/(CASE-\d+)">.*?</tr>)', html, re.S
        )
    }
    # Critical and new: 15 minutes to acknowledge. Acknowledged: the resolve deadline. Closed: none.
    assert re.search(r'class="sla sla-ok"[^>]*>ack in 1[45] min<', rows["CASE-1"])
    assert re.search(r'class="sla sla-ok"[^>]*>resolve in [34] h<', rows["CASE-2"])
    assert 'class="sla' not in rows["CASE-3"]


def test_the_breached_filter_lists_open_cases_that_missed_a_deadline(web: Web):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from casefold.store.tables import cases

    _cases(web, 3)
    web.signed_in()
    long_ago = datetime.now(UTC) - timedelta(days=3)
    web.runtime.writer.run(
        lambda conn: conn.execute(
            update(cases).where(cases.c.id.in_([1, 2])).values(created_at=long_ago)
        )
    )
    web.api("PATCH", "/api/v1/cases/CASE-2", json={"status": "resolved"})
    web.runtime.sla_watcher.run_once()
    page = web.client.get("/?sla=breached").text
    assert _refs(page) == ["CASE-1"]
    assert re.search(r'class="sla sla-breached"[^>]*>ack overdue', page)
    assert web.client.get("/?sla=soon").status_code == 400


def test_bulk_merge_folds_the_selected_cases_into_the_oldest(web: Web):
    _cases(web, 3)
    csrf = web.signed_in()
    r = web.client.post(
        "/cases/bulk",
        data={"csrf_token": csrf, "op": "merge", "case": ["3", "1", "2"]},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/cases/CASE-1"
    page = web.client.get("/cases/CASE-1").text
    assert "2 cases merged into CASE-1." in page
    target = web.api("GET", "/api/v1/cases/CASE-1").json()
    assert target["alert_count"] == 3
    for ref in ("CASE-2", "CASE-3"):
        merged = web.api("GET", f"/api/v1/cases/{ref}").json()
        assert merged["status"] == "closed" and merged["fields"]["merged_into"] == "CASE-1"
    # A named target wins over the oldest; merging one case alone is refused.
    r = web.client.post(
        "/cases/bulk", data={"csrf_token": csrf, "op": "merge", "case": ["1"], "target": "CASE-1"}
    )
    assert r.status_code == 422
