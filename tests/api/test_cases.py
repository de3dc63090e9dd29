"""Reading and changing cases through the API; every change lands on the timeline."""

from __future__ import annotations

from support.alerts import sshd_alert

URL = "/api/v1/alerts/wazuh"


def make_cases(api, n: int) -> list[dict]:
    api.post(URL, json=[sshd_alert(i, srcip=f"198.51.100.{i + 1}", minutes=i) for i in range(n)])
    api.fold()
    return api.get("/api/v1/cases", params={"limit": 500, "sort": "id"}).json()["items"]


def test_patch_changes_fields_and_records_old_and_new(api):
    ref = make_cases(api, 1)[0]["ref"]
    r = api.patch(
        f"/api/v1/cases/{ref}",
        role="analyst",
        json={
            "status": "in_progress",
            "priority": "high",
            "assignee": "alice",
            "tags": ["phishing", "T1110"],
            "fields": {"ticket": "SEC-1"},
            "summary": "Brute force on the bastion",
            "description": "triaged",
        },
    )
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["status"], case["priority"], case["assignee"]) == ("in_progress", "high", "alice")
    assert case["tags"] == ["T1110", "phishing"]
    assert case["fields"] == {"ticket": "SEC-1"}
    assert r.headers["etag"] == f'"{case["version"]}"'
    events = api.get(f"/api/v1/cases/{ref}/timeline").json()["items"]
    changed = {e["kind"]: e for e in events if e["actor"] == "test-analyst"}
    assert changed["status_changed"]["old"] == "new"
    assert changed["status_changed"]["new"] == "in_progress"
    assert changed["priority_changed"]["old"] == "unknown"
    assert changed["assignee_changed"]["new"] == "alice"
    assert changed["tag_added"]["new"] in ("phishing", "T1110")
    assert any(e["kind"] == "tag_removed" and e["old"] == "bruteforce" for e in events)
    assert changed["fields_changed"]["new"] == {"ticket": "SEC-1"}
    assert changed["summary_changed"]["new"] == "Brute force on the bastion"


def test_unchanged_values_write_nothing(api):
    ref = make_cases(api, 1)[0]["ref"]
    before = len(api.get(f"/api/v1/cases/{ref}/timeline").json()["items"])
    case = api.patch(f"/api/v1/cases/{ref}", json={"status": "new"}).json()
    assert case["version"] == 1
    assert len(api.get(f"/api/v1/cases/{ref}/timeline").json()["items"]) == before


def test_closing_and_reopening_are_named_events(api):
    ref = make_cases(api, 1)[0]["ref"]
    api.patch(f"/api/v1/cases/{ref}", json={"status": "closed"})
    api.patch(f"/api/v1/cases/{ref}", json={"status": "in_progress"})
    kinds = [e["kind"] for e in api.get(f"/api/v1/cases/{ref}/timeline").json()["items"]]
    assert kinds[-2:] == ["case_closed", "case_reopened"]


def test_fields_merge_and_null_removes(api):
    ref = make_cases(api, 1)[0]["ref"]
    api.patch(f"/api/v1/cases/{ref}", json={"fields": {"a": 1, "b": 2}})
    case = api.patch(f"/api/v1/cases/{ref}", json={"fields": {"b": None, "c": "x"}}).json()
    assert case["fields"] == {"a": 1, "c": "x"}


def test_assignee_null_unassigns(api):
    ref = make_cases(api, 1)[0]["ref"]
    api.patch(f"/api/v1/cases/{ref}", json={"assignee": "bob"})
    assert api.patch(f"/api/v1/cases/{ref}", json={"assignee": None}).json()["assignee"] is None


def test_bad_patch_is_422_naming_the_field(api):
    ref = make_cases(api, 1)[0]["ref"]
    for body, field in [
        ({"status": "done"}, "status"),
        ({"severity": 3}, "severity"),
        ({"bogus": 1}, "bogus"),
        ({"tags": "x"}, "tags"),
        ({"summary": ""}, "summary"),
        ({"status": None}, "status"),
        ({"tags": ["ok", ""]}, "tags[1]"),
    ]:
        r = api.patch(f"/api/v1/cases/{ref}", json=body)
        assert r.status_code == 422, body
        assert r.json()["field"] == field, (body, r.json())
    assert api.get(f"/api/v1/cases/{ref}").json()["version"] == 1


def test_stale_version_is_409(api):
    ref = make_cases(api, 1)[0]["ref"]
    api.patch(f"/api/v1/cases/{ref}", json={"priority": "low"}, headers={"If-Match": '"1"'})
    r = api.patch(f"/api/v1/cases/{ref}", json={"priority": "high"}, headers={"If-Match": '"1"'})
    assert r.status_code == 409
    assert r.json()["error"] == "conflict"
    assert api.get(f"/api/v1/cases/{ref}").json()["priority"] == "low"


def test_unknown_case_is_404(api):
    for method, path in [
        ("GET", "/api/v1/cases/CASE-999"),
        ("PATCH", "/api/v1/cases/CASE-999"),
        ("GET", "/api/v1/cases/CASE-999/timeline"),
        ("GET", "/api/v1/cases/nonsense"),
        ("GET", "/api/v1/alerts/999"),
    ]:
        r = api.client.request(method, path, headers=api.headers(), json={"status": "new"})
        assert r.status_code == 404, path
        assert r.json()["error"] == "not_found"


def test_comments(api):
    ref = make_cases(api, 1)[0]["ref"]
    r = api.post(f"/api/v1/cases/{ref}/comments", role="analyst", json={"content": "blocked it"})
    assert r.status_code == 201
    case = api.get(f"/api/v1/cases/{ref}").json()
    assert [(c["author"], c["content"]) for c in case["comments"]] == [
        ("test-analyst", "blocked it")
    ]
    events = api.get(f"/api/v1/cases/{ref}/timeline").json()["items"]
    assert events[-1]["kind"] == "comment_created"
    assert api.post(f"/api/v1/cases/{ref}/comments", json={"content": ""}).status_code == 422
    assert api.post(f"/api/v1/cases/{ref}/comments", json={}).json()["field"] == "content"


def test_case_alerts(api):
    api.post(URL, json=[sshd_alert(i, minutes=i) for i in range(3)])
    api.fold()
    ref = api.get("/api/v1/cases").json()["items"][0]["ref"]
    items = api.get(f"/api/v1/cases/{ref}/alerts").json()["items"]
    assert [a["source_id"] for a in items] == [sshd_alert(i, minutes=i)["id"] for i in range(3)]
    assert all(a["case"] == ref for a in items)


def test_filters(api):
    found = make_cases(api, 6)
    refs = [c["ref"] for c in found]
    api.patch(f"/api/v1/cases/{refs[0]}", json={"status": "closed", "assignee": "alice"})
    api.patch(f"/api/v1/cases/{refs[1]}", json={"priority": "critical", "tags": ["vip"]})
    api.patch(f"/api/v1/cases/{refs[2]}", json={"severity": "fatal", "summary": "Ransomware"})

    def q(**params):
        return [c["ref"] for c in api.get("/api/v1/cases", params=params).json()["items"]]

    assert q(status="closed") == [refs[0]]
    assert set(q(status="new")) == set(refs[1:])
    assert set(q(status=["closed", "new"])) == set(refs)
    assert q(assignee="alice") == [refs[0]]
    assert len(q(assignee="unassigned")) == 5
    assert q(priority="critical") == [refs[1]]
    assert q(tag="vip") == [refs[1]]
    assert q(severity="fatal") == [refs[2]]
    assert q(text="ransom") == [refs[2]]
    assert q(sort="-severity")[0] == refs[2]
    assert q(since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z") == []
    r = api.get("/api/v1/cases", params={"status": "nope"})
    assert r.status_code == 422 and r.json()["field"] == "status"
    r = api.get("/api/v1/cases", params={"sort": "colour"})
    assert r.status_code == 422 and r.json()["field"] == "sort"


def test_cursor_pagination_visits_every_case_once(api):
    found = make_cases(api, 13)
    for sort in ("id", "-id", "-updated_at", "severity", "-alert_count"):
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 4, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/v1/cases", params=params).json()
            seen += [c["ref"] for c in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(c["ref"] for c in found), sort
        assert len(seen) == len(set(seen))
    r = api.get("/api/v1/cases", params={"cursor": "garbage"})
    assert r.status_code == 422 and r.json()["field"] == "cursor"


def test_alert_listing_filters_and_pages(api):
    api.post(URL, json=[sshd_alert(i, minutes=i, level=3 + i) for i in range(8)])
    items = api.get("/api/v1/alerts", params={"min_level": 8, "sort": "time"}).json()["items"]
    assert [a["level"] for a in items] == [8, 9, 10]
    page = api.get("/api/v1/alerts", params={"limit": 5}).json()
    rest = api.get("/api/v1/alerts", params={"limit": 5, "cursor": page["next_cursor"]}).json()
    assert len(page["items"]) == 5 and len(rest["items"]) == 3 and rest["next_cursor"] is None


def test_openapi_lists_the_routes(api):
    spec = api.get("/api/v1/openapi.json", role="viewer").json()
    assert "/api/v1/cases/{ref}" in spec["paths"]
    assert "patch" in spec["paths"]["/api/v1/cases/{ref}"]
