"""An analyst's day in a real browser: sign in, filter the queue, open a case, change its
status, comment, approve a response, watch new cases arrive, and read the dashboard."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect
from support.alerts import BASE_TIME, sshd_alert

from .conftest import Served, sign_in


def _cases_for(served: Served, *last_octets: int) -> list[str]:
    """One brute-force case per address; returns their refs."""
    # Alerts of the last few minutes, so the dashboard's 24-hour window sees them.
    ago = (datetime.now(UTC) - BASE_TIME).total_seconds() / 60 - 5
    served.post_alerts(
        [sshd_alert(1000 + n, srcip=f"203.0.113.{n}", minutes=ago + n / 60) for n in last_octets]
    )
    refs = []
    for n in last_octets:
        found = served.api("GET", "/api/v1/cases", params={"text": f"203.0.113.{n}"}).json()
        refs.append(next(c["ref"] for c in found["items"] if c["summary"].endswith(f".{n}")))
    return refs


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_queue(page: Any, served: Served):
    _cases_for(served, 11)
    sign_in(page, password="not it")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Cases")).to_be_visible()
    expect(page.locator("table.queue tbody tr").first).to_be_visible()


def test_filtering_the_queue(page: Any, served: Served):
    (ref,) = _cases_for(served, 21)
    _cases_for(served, 22)
    sign_in(page)
    filters = page.get_by_role("form", name="Filter cases")
    filters.get_by_label("Search").fill("203.0.113.21")
    filters.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"q=203\.0\.113\.21"))
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(ref)
    filters = page.get_by_role("form", name="Filter cases")
    filters.get_by_label("Status").select_option(["closed"])
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator("table.queue tbody tr")).to_have_count(0)
    expect(page.get_by_text("No case matches these filters.")).to_be_visible()


def test_open_a_case_change_its_status_and_comment(page: Any, served: Served):
    (ref,) = _cases_for(served, 31)
    sign_in(page)
    page.goto("/?q=203.0.113.31")
    page.get_by_role("link", name=ref).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(ref)
    expect(page.locator("ol.timeline")).to_contain_text("opened by rule auth-bruteforce")
    edit = page.get_by_role("form", name="Edit case")
    edit.get_by_label("Status").select_option("in_progress")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Case saved.")
    expect(page.locator(".case-head .status")).to_have_text("in progress")
    expect(page.locator("ol.timeline")).to_contain_text("Status: new → in progress")
    comment = page.get_by_role("form", name="Add a comment")
    comment.get_by_label("Comment").fill("Checked the VPN logs: not one of ours.")
    comment.get_by_role("button", name="Add comment").click()
    expect(page.locator(".comment").filter(has_text="Checked the VPN logs")).to_be_visible()
    assert served.api("GET", f"/api/v1/cases/{ref}").json()["status"] == "in_progress"


def test_approving_a_response_blocks_the_address(page: Any, served: Served):
    (ref,) = _cases_for(served, 41)
    sign_in(page)
    page.goto(f"/cases/{ref}#responses")
    pending = page.locator(".response").filter(has_text="firewall.block_ip")
    expect(pending).to_contain_text("awaiting approval")
    pending.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("approved")
    deadline = time.monotonic() + 15
    while "203.0.113.41" not in served.firewall.blocked and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "203.0.113.41" in served.firewall.blocked  # the outbox executed it, once approved
    page.reload()
    expect(page.locator(".response").filter(has_text="firewall.block_ip")).to_contain_text("active")


def test_new_cases_appear_live_without_losing_the_selection(page: Any, served: Served):
    _cases_for(served, 51)
    sign_in(page)
    page.goto("/")
    first = page.locator("table.queue tbody tr").first
    first.locator("input[type=checkbox]").check()
    (ref,) = _cases_for(served, 52)
    fresh = page.locator("table.queue tbody tr.fresh")
    expect(fresh).to_contain_text(ref, timeout=20_000)
    expect(page.locator("#live")).to_contain_text("added at the top")
    # The row ticked before the new case arrived is still ticked, one row lower.
    expect(
        page.locator("table.queue tbody tr").nth(1).locator("input[type=checkbox]")
    ).to_be_checked()


def test_bulk_status_change_from_the_queue(page: Any, served: Served):
    refs = _cases_for(served, 61, 62)
    sign_in(page)
    page.goto("/?q=203.0.113.6")
    for ref in refs:
        page.get_by_label(f"Select {ref}").check()
    bulk = page.get_by_role("form", name="Change selected cases")
    bulk.get_by_label("Action").select_option("status")
    bulk.get_by_label("New status").select_option("on_hold")
    bulk.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("status")).to_have_text("2 cases set to on hold.")
    for ref in refs:
        assert served.api("GET", f"/api/v1/cases/{ref}").json()["status"] == "on_hold"


def test_the_dashboard_draws_its_charts(page: Any, served: Served):
    _cases_for(served, 71)
    sign_in(page)
    page.get_by_role("link", name="Dashboard").click()
    charts = page.locator("svg[role=img]")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 5
    expect(page.locator("body")).to_contain_text("5712")  # the sshd rule among the top rules


def test_a_viewer_reads_but_cannot_edit(page: Any, served: Served):
    (ref,) = _cases_for(served, 81)
    sign_in(page, name="vic")
    page.goto(f"/cases/{ref}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(ref)
    expect(page.get_by_role("form", name="Edit case")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
