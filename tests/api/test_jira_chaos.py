"""Chaos: Jira fails for a while (500, 429, resets, hangs, and answers lost after acting) while
200 cases are opened, commented and moved on; in the end there are exactly 200 issues, none
twice, every comment and transition applied."""

from __future__ import annotations

from datetime import timedelta

from fakes.jira import DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake

from casefold.cases import service

CASES = 200


def test_two_hundred_cases_through_a_failing_jira(api_factory):
    with JiraFake(page_size=50, hang_for=1.5) as jira:
        api = api_factory(
            jira={
                "url": jira.url,
                "project": "SEC",
                "timeout": 0.5,
                "max_attempts": 50,
                "reconcile_seconds": 0,
            },
            secrets={"jira": {"EMAIL": DEFAULT_EMAIL, "API_TOKEN": DEFAULT_TOKEN}},
        )
        worker = api.runtime.sync.worker
        jira.fail_next(5, 500)
        jira.fail_next(3, 429, retry_after=1)
        jira.fail_next(4, "reset")
        jira.fail_next(2, "hang")
        jira.fail_after_commit(3, 500)
        ids = api.runtime.writer.run(
            lambda conn: [
                service.open_case(conn, summary=f"case {n}", severity="high", actor="alice")
                for n in range(CASES)
            ]
        )
        for case_id in ids:
            api.post(f"/api/v1/cases/CASE-{case_id}/comments", json={"content": f"note {case_id}"})
            api.patch(f"/api/v1/cases/CASE-{case_id}", json={"status": "in_progress"})
        jira.fail_after_commit(2, "reset")  # some comments land but their answers are lost
        start = worker.clock()
        for step in range(60):
            worker.drain()
            counts = api.get("/api/v1/outbox", params={"limit": 1}).json()["counts"]
            if set(counts) == {"done"}:
                break
            # let the back-offs run out without waiting for them
            worker.clock = lambda s=step: start + timedelta(minutes=10 * (s + 1))
        assert set(counts) == {"done"}, counts
        assert jira.count_created() == CASES and len(jira.issues) == CASES
        labels = [lab for i in jira.issues.values() for lab in i.labels if "case-" in lab]
        assert sorted(labels) == sorted(f"casefold-case-{i}" for i in ids)
        for issue in jira.issues.values():
            [label] = [lab for lab in issue.labels if lab.startswith("casefold-case-")]
            case_id = int(label.removeprefix("casefold-case-"))
            assert issue.status == "In Progress"
            assert [c.text.split("\n")[0] for c in issue.comments] == [f"note {case_id}"]
