"""The outbox survives SIGKILL: `casefold serve` is killed while a Jira call is in flight (Jira
acted, the answer never came), restarted, and in the end every case has exactly one issue with
its comment and transition, none applied twice."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from fakes.jira import DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake
from support.alerts import sshd_alert
from support.server import ServerProcess

pytestmark = pytest.mark.slow

CASES = 200


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_sigkill_mid_delivery_makes_nothing_twice(tmp_path):
    with JiraFake(page_size=100, hang_for=20) as jira:
        env = {
            "CASEFOLD_JIRA__URL": jira.url,
            "CASEFOLD_JIRA__PROJECT": "SEC",
            "CASEFOLD_JIRA__TIMEOUT": "10",
            "CASEFOLD_JIRA__MAX_ATTEMPTS": "50",
            "CASEFOLD_JIRA__RECONCILE_SECONDS": "0",
            "CASEFOLD_OUTBOX_RETRY_SECONDS": "0.2",
            "CASEFOLD_OUTBOX_LEASE_SECONDS": "3",
            "CASEFOLD_SECRET__JIRA__EMAIL": DEFAULT_EMAIL,
            "CASEFOLD_SECRET__JIRA__API_TOKEN": DEFAULT_TOKEN,
        }
        srv = ServerProcess(tmp_path / "data", env=env).start()
        try:
            client = httpx.Client(base_url=srv.url, headers=srv.headers(), timeout=30)
            # 200 attackers at level 12: 200 high-severity cases, in two halves

            def post(numbers: range) -> None:
                body = b"\n".join(
                    orjson.dumps(sshd_alert(n, srcip=f"45.{n // 250}.{n % 250}.9", level=12))
                    for n in numbers
                )
                r = client.post(
                    "/api/v1/alerts/wazuh",
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                )
                assert r.json()["accepted"] == len(numbers)

            post(range(CASES // 2))
            wait_for(lambda: jira.count_created() >= CASES // 2, 60, "the first issues")
            jira.fail_after_commit(1, "hang")  # the next issue lands, its answer never comes
            post(range(CASES // 2, CASES))
            wait_for(lambda: jira.count_created() > CASES // 2, 30, "the hanging create")
            srv.kill()  # while that create waits for Jira's answer
            before = jira.count_created()
            client.close()
            srv.start()
            client = httpx.Client(base_url=srv.url, headers=srv.headers(), timeout=30)
            srv.wait_folded(CASES)
            refs = [
                c["ref"] for c in client.get("/api/v1/cases", params={"limit": 500}).json()["items"]
            ]
            assert len(refs) == CASES
            for ref in refs:
                client.post(f"/api/v1/cases/{ref}/comments", json={"content": f"note {ref}"})
                client.patch(f"/api/v1/cases/{ref}", json={"status": "in_progress"})

            def settled() -> bool:
                counts = client.get("/api/v1/outbox", params={"limit": 1}).json()["counts"]
                return set(counts) == {"done"}

            wait_for(settled, 120, "every effect to be delivered")
            client.close()
        finally:
            srv.stop()
        assert before < CASES  # the kill really landed mid-way
        assert jira.count_created() == CASES and len(jira.issues) == CASES
        labels = [lab for i in jira.issues.values() for lab in i.labels if "case-" in lab]
        assert len(set(labels)) == CASES
        for issue in jira.issues.values():
            assert issue.status == "In Progress", issue.key
            assert len(issue.comments) == 1, (issue.key, [c.text for c in issue.comments])
