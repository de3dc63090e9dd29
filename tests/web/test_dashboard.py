"""The dashboard page: the numbers users see in its charts, the window selector, escaping of
alert text, who may see it, and its short-lived cache."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.alerts import fim_alert, sshd_alert, wazuh_time
from support.web import PASSWORD, Web

from casefold.access import Role
from casefold.store.tables import cases
from casefold.web.dashboard import StatsCache

URL = "/api/v1/alerts/wazuh"
SVG = "{http://www.w3.org/2000/svg}"


def alert(
    n: int,
    ago: timedelta,
    *,
    level: int = 10,
    rule_id: str = "5712",
    title: str | None = None,
    agent: tuple[str, str] | None = None,
    srcip: str = "203.0.113.7",
    mitre: tuple[list[str], list[str]] | None = None,
) -> dict[str, Any]:
    doc = sshd_alert(n, level=level, rule_id=rule_id, srcip=srcip)
    doc["timestamp"] = wazuh_time(datetime.now(UTC) - ago)
    doc["id"] = f"{1_700_000_000 + n}.{n}"
    if title is not None:
        doc["rule"]["description"] = title
    if agent is not None:
        doc["agent"] = {"id": agent[1], "name": agent[0]}
    if mitre is not None:
        doc["rule"]["mitre"] = {"id": mitre[0], "technique": mitre[1], "tactic": []}
    return doc


def post(web: Web, docs: list[dict[str, Any]]) -> None:
    r = web.client.post(URL, json=docs, headers={"Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(docs)


def signed_in(web: Web, role: Role = Role.ANALYST) -> None:
    web.create_user("dana", role)
    assert web.sign_in(name="dana", password=PASSWORD).status_code == 303


def chart(html: str, section: str) -> ET.Element:
    """The SVG in the page's section `section`, as XML (well-formed: every label escaped)."""
    m = re.search(rf'<section class="chart" id="{section}">(.*?)</section>', html, re.S)
    assert m, section
    svg = re.search(r"<svg.*</svg>", m.group(1), re.S)
    assert svg, m.group(1)
    return ET.fromstring(svg.group(0))


def bar_tips(root: ET.Element) -> list[str]:
    """The tooltip (exact value) of every bar, in drawing order."""
    out: list[str] = []
    for rect in root.iter(f"{SVG}rect"):
        title = rect.find(f"{SVG}title")
        if rect.get("class") == "mark" and title is not None:
            out.append(title.text or "")
    return out


def texts(root: ET.Element, cls: str | None = None) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if cls is None or t.get("class") == cls]


def dashboard(web: Web, query: str = "") -> str:
    r = web.client.get(f"/dashboard{query}", follow_redirects=False)
    assert r.status_code == 200, r.text
    assert "<script" not in r.text.lower()  # the page runs no JavaScript at all
    return r.text


HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def seed(web: Web) -> None:
    """Alerts today, three days ago and ten days ago; cases folded from them."""
    post(
        web,
        [
            alert(0, 5 * MINUTE, level=3, agent=("web-01", "001"), srcip="198.51.100.1"),
            alert(1, 6 * MINUTE, level=8, agent=("web-01", "001"), srcip="198.51.100.2"),
            alert(2, 2 * HOUR, level=8, agent=("web-01", "001"), srcip="198.51.100.3"),
            alert(
                3,
                3 * HOUR,
                level=12,
                rule_id="31108",
                title="Web attack",
                agent=("db-01", "002"),
                mitre=(["T1190"], ["Exploit Public-Facing Application"]),
            ),
            alert(4, 20 * HOUR, level=15, rule_id="31108", title="Web attack"),
            alert(5, timedelta(days=3), level=8, rule_id="554", title="File added"),
            alert(6, timedelta(days=10), level=13, rule_id="554", title="File added"),
        ],
    )
    web.runtime.folding.drain()


def test_dashboard_shows_the_numbers_of_the_last_day(web: Web):
    seed(web)
    signed_in(web)
    html = dashboard(web)

    alerts = chart(html, "alerts")
    assert alerts.get("role") == "img"
    assert "Alerts per hour by level band, last 24 hours" in (alerts.get("aria-label") or "")
    assert texts(alerts, "legend") == ["low 1", "medium 2", "high 1", "critical 1"]
    assert len([t for t in texts(alerts, "axis") if t.endswith(":00")]) >= 6
    assert sorted(tip.split(" · ")[1] for tip in bar_tips(alerts)) == [
        "critical: 1",
        "high: 1",
        "low: 1",
        "medium: 1",  # two medium alerts, two hours apart: two bars
        "medium: 1",
    ]
    assert "5 alerts</span> in the last 24 hours" in html

    rules = chart(html, "rules")
    assert bar_tips(rules) == [
        "Rule 5712: sshd: brute force trying to get access to the system. Non existent user.: 3",
        "Rule 31108: Web attack: 2",
    ]
    assert texts(rules, "value") == ["3", "2"]

    agents = chart(html, "agents")
    assert bar_tips(agents) == [
        "Agent web-01 (id 001): 3",
        "Agent db-01 (id 002): 1",
        "Agent localhost.localdomain (id 000): 1",
    ]

    techniques = chart(html, "techniques")
    assert bar_tips(techniques) == [
        "T1110 Brute Force: 4",  # the sshd sample's technique, on every alert but the web one
        "T1190 Exploit Public-Facing Application: 1",
    ]

    statuses = chart(html, "statuses")
    labels = texts(statuses, "label")
    assert labels == ["unknown", "new", "in progress", "on hold", "resolved", "closed", "other"]
    cases = web.client.get(
        "/api/v1/cases",
        params={"limit": 500},
        headers={"Authorization": f"Bearer {web.admin_token}"},
    ).json()["items"]
    assert texts(statuses, "value") == ["0", str(len(cases)), "0", "0", "0", "0", "0"]
    assert bar_tips(statuses) == [f"new: {len(cases)}"]


def test_cases_by_status_counts_every_case(web: Web):
    post(web, [alert(i, i * MINUTE, srcip=f"198.51.100.{i + 1}") for i in range(4)])
    web.runtime.folding.drain()
    headers = {"Authorization": f"Bearer {web.admin_token}"}
    refs = [
        c["ref"]
        for c in web.client.get("/api/v1/cases", params={"sort": "id"}, headers=headers).json()[
            "items"
        ]
    ]
    assert len(refs) == 4
    for ref, status in zip(refs, ("in_progress", "closed", "closed"), strict=False):
        r = web.client.patch(f"/api/v1/cases/{ref}", json={"status": status}, headers=headers)
        assert r.status_code == 200, r.text
    signed_in(web)
    statuses = chart(dashboard(web), "statuses")
    assert dict(zip(texts(statuses, "label"), texts(statuses, "value"), strict=True)) == {
        "unknown": "0",
        "new": "1",
        "in progress": "1",
        "on hold": "0",
        "resolved": "0",
        "closed": "2",
        "other": "0",
    }


def test_the_window_selector(web: Web):
    seed(web)
    signed_in(web)
    day = dashboard(web, "?hours=24")
    assert '<strong aria-current="page">Last 24 hours</strong>' in day
    assert 'href="/dashboard?hours=168"' in day and 'href="/dashboard?hours=720"' in day

    week = dashboard(web, "?hours=168")
    alerts = chart(week, "alerts")
    assert "Alerts per day by level band, last 7 days" in (alerts.get("aria-label") or "")
    assert texts(alerts, "legend") == ["low 1", "medium 3", "high 1", "critical 1"]
    assert '<strong aria-current="page">Last 7 days</strong>' in week
    assert ("Rule 554: File added: 1") in bar_tips(chart(week, "rules"))

    month = dashboard(web, "?hours=720")
    assert texts(chart(month, "alerts"), "legend") == ["low 1", "medium 3", "high 2", "critical 1"]
    assert "Rule 554: File added: 2" in bar_tips(chart(month, "rules"))


@pytest.mark.parametrize("hours", ["7", "0", "-24", "abc", "", "24.0", "1e3", "99999999999999"])
def test_other_windows_are_a_bad_request(web: Web, hours: str):
    signed_in(web)
    r = web.client.get("/dashboard", params={"hours": hours}, follow_redirects=False)
    assert r.status_code == 400
    assert "hours must be one of 24, 168, 720" in r.text


def test_alert_text_is_escaped(web: Web):
    hostile = "<script>alert('pwned')</script>"
    post(
        web,
        [
            alert(
                0,
                MINUTE,
                rule_id="<b>9</b>",
                title=hostile,
                agent=(hostile, '"><svg onload=x>'),
                mitre=([hostile], [hostile]),
            )
        ],
    )
    signed_in(web)
    html = dashboard(web)
    assert hostile not in html and "<b>9</b>" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert bar_tips(chart(html, "rules")) == [f"Rule <b>9</b>: {hostile}: 1"]
    assert bar_tips(chart(html, "agents")) == [f'Agent {hostile} (id "><svg onload=x>): 1']
    assert bar_tips(chart(html, "techniques")) == [f"{hostile} {hostile}: 1"]


def test_empty_store_says_so(web: Web):
    signed_in(web)
    html = dashboard(web)
    assert texts(chart(html, "alerts")) == ["No alerts in the last 24 hours"]
    assert texts(chart(html, "rules")) == ["No alerts in the last 24 hours"]
    assert texts(chart(html, "statuses")) == ["No cases yet"]
    week = dashboard(web, "?hours=168")
    assert texts(chart(week, "agents")) == ["No alerts in the last 7 days"]


def test_a_viewer_sees_it_and_signed_out_goes_to_login(web: Web):
    r = web.client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    post(web, [fim_alert(0, minutes=0)])
    signed_in(web, Role.VIEWER)
    r = web.client.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert 'style="' not in r.text and "<style" not in r.text


def test_figures_are_kept_for_thirty_seconds(web: Web):
    clock = [1000.0]
    web.client.app.state.dashboard_cache = StatsCache(clock=lambda: clock[0])  # type: ignore[attr-defined]
    signed_in(web)
    post(web, [alert(0, MINUTE)])
    assert texts(chart(dashboard(web), "alerts"), "legend")[1] == "medium 1"
    post(web, [alert(1, MINUTE)])
    clock[0] += 29
    assert texts(chart(dashboard(web), "alerts"), "legend")[1] == "medium 1"  # cached
    assert texts(chart(dashboard(web, "?hours=168"), "alerts"), "legend")[1] == "medium 2"
    clock[0] += 2
    assert texts(chart(dashboard(web), "alerts"), "legend")[1] == "medium 2"


def test_mean_times_and_sla_breaches_by_severity(web: Web):
    web.runtime.sla_watcher.stop()  # the breaches below are set by hand: no pass may add more
    post(web, [alert(i, MINUTE, srcip=f"198.51.100.{i + 1}") for i in range(4)])
    web.runtime.folding.drain()
    created = datetime.now(UTC) - 5 * HOUR
    old = datetime.now(UTC) - timedelta(days=3)  # before the day: only in the week's figures
    # (severity, created, acknowledged after, resolved after, ack breached, resolve breached)
    plan = [
        ("critical", created, timedelta(minutes=40), timedelta(hours=3), False, True),
        ("critical", created, timedelta(minutes=44), None, True, True),
        ("low", created, None, None, True, False),
        ("low", old, timedelta(days=1), None, True, True),
    ]

    def shape(conn: Any) -> None:
        ids = [r.id for r in conn.execute(cases.select().order_by(cases.c.id))]
        assert len(ids) == len(plan)
        for case_id, (severity, at, ack, res, ack_late, res_late) in zip(ids, plan, strict=True):
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(
                    severity=severity,
                    created_at=at,
                    acknowledged_at=at + ack if ack else None,
                    resolved_at=at + res if res else None,
                    sla_ack_breached_at=at + MINUTE if ack_late else None,
                    sla_resolve_breached_at=at + HOUR if res_late else None,
                )
            )

    web.runtime.writer.run(shape)
    signed_in(web)
    html = dashboard(web)
    mtta = chart(html, "mtta")
    assert "Mean time to acknowledge by severity" in (mtta.get("aria-label") or "")
    assert texts(mtta, "label") == ["critical", "low"]  # highest severity first
    assert texts(mtta, "value") == ["42 min", "no data"]  # (40 + 44) / 2; none acknowledged
    assert bar_tips(mtta) == ["critical (2 of 2 acknowledged): 42 min"]
    mttr = chart(html, "mttr")
    assert texts(mttr, "value") == ["3.0 h", "no data"]
    assert bar_tips(mttr) == ["critical (1 of 2 resolved): 3.0 h"]
    breaches = chart(html, "breaches")
    assert bar_tips(breaches) == [
        "critical · acknowledge deadline missed: 1",
        "critical · resolve deadline missed: 2",
        "low · acknowledge deadline missed: 1",
    ]
    assert texts(breaches, "value") == ["1", "2", "1", "0"]
    week = dashboard(web, "?hours=168")
    assert bar_tips(chart(week, "mtta")) == [
        "critical (2 of 2 acknowledged): 42 min",
        "low (1 of 2 acknowledged): 1.0 d",
    ]
    assert "low · resolve deadline missed: 1" in bar_tips(chart(week, "breaches"))


def test_sla_charts_without_cases(web: Web):
    signed_in(web)
    html = dashboard(web)
    for section in ("mtta", "mttr", "breaches"):
        assert texts(chart(html, section)) == ["No cases opened in the last 24 hours"]
    post(web, [alert(0, MINUTE)])
    web.runtime.folding.drain()
    web.client.app.state.dashboard_cache = StatsCache(ttl=0)  # type: ignore[attr-defined]
    html = dashboard(web)
    assert texts(chart(html, "mtta")) == ["No case acknowledged yet"]
    assert texts(chart(html, "mttr")) == ["No case resolved yet"]
    assert texts(chart(html, "breaches")) == ["No SLA breaches in the last 24 hours"]


def test_longer_windows_are_kept_longer_in_the_cache():
    now = [0.0]
    cache = StatsCache(ttl=30, clock=lambda: now[0])
    computed: list[int] = []

    def compute(hours: int):
        return lambda: computed.append(hours) or hours  # type: ignore[func-returns-value]

    for hours in (24, 720):
        cache.get(hours, compute(hours))
    now[0] = 600.0  # ten minutes on: the 24-hour view is stale, the 30-day one is not
    for hours in (24, 720):
        cache.get(hours, compute(hours))
    assert computed == [24, 720, 24]
    assert cache.ttl_for(168) == 210
