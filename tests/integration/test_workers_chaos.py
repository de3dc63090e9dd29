"""Many workers on one PostgreSQL, one of them SIGKILLed mid-stream.

One `casefold serve --role api` takes 20,000 alerts; three `casefold worker` processes fold them,
run a playbook on every new case and sync high-severity cases to a faithful Jira fake. One worker
is killed with SIGKILL while it holds claimed work (a fold transaction, leased runs, a Jira call
in flight). In the end every alert is folded, each attacker's alerts sit in exactly one case,
every run finished once, and Jira has exactly one issue and one comment per case.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from fakes.jira import DEFAULT_EMAIL, DEFAULT_TOKEN, JiraFake
from sqlalchemy import create_engine, text
from support.alerts import sshd_alert
from support.server import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ALERTS = 20_000
ATTACKERS = 400  # 50 alerts each: one case per attacker
BATCH = 1_000

PLAYBOOK = """\
title: Note every new brute-force case
trigger:
  groups: [sshd]
  if: ${{ TRIGGER.case.opened_by_alert }}
actions:
  - ref: source
    action: core.transform.reshape
    args: {value: "${{ TRIGGER.data.data.srcip }}"}
  - ref: note
    action: cases.create_comment
    depends_on: [source]
    args:
      case_id: ${{ TRIGGER.case.id }}
      content: "brute force from ${{ ACTIONS.source.result }}"
"""


def attacker(n: int) -> str:
    return f"45.{n // 200}.{n % 200}.9"


def wait_for(check, timeout: float, what: str, state=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} {state()}")
        time.sleep(0.2)


class Worker:
    def __init__(self, n: int, data_dir: Path, database_url: str, env: dict[str, str]) -> None:
        self.log = data_dir.parent / f"worker-{n}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "casefold", "worker", "--data-dir", str(data_dir)]
                + ["--database-url", database_url],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_three_workers_one_killed_lose_and_repeat_nothing(tmp_path, postgres_server):
    database_url = postgres_server.new_database()
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "note.yml").write_text(textwrap.dedent(PLAYBOOK))
    data_dir = tmp_path / "data"
    with JiraFake(page_size=100, hang_for=8) as jira:
        env = {
            "CASEFOLD_JIRA__URL": jira.url,
            "CASEFOLD_JIRA__PROJECT": "SEC",
            "CASEFOLD_JIRA__MIN_SEVERITY": "high",
            "CASEFOLD_JIRA__TIMEOUT": "2",
            "CASEFOLD_JIRA__MAX_ATTEMPTS": "50",
            "CASEFOLD_JIRA__RECONCILE_SECONDS": "0",
            "CASEFOLD_SECRET__JIRA__EMAIL": DEFAULT_EMAIL,
            "CASEFOLD_SECRET__JIRA__API_TOKEN": DEFAULT_TOKEN,
            "CASEFOLD_OUTBOX_RETRY_SECONDS": "0.2",
            # A crashed worker's claims come back after these; short, so the test is quick, yet
            # more than twice the slowest call (a lease must outlast the work it covers).
            "CASEFOLD_OUTBOX_LEASE_SECONDS": "6",
            "CASEFOLD_PLAYBOOK_LEASE_SECONDS": "6",
            "CASEFOLD_PLAYBOOKS_DIR": str(playbooks),
        }
        api = ServerProcess(
            data_dir, database_url=database_url, extra_args=("--role", "api"), env=env
        ).start()
        workers = [Worker(n, data_dir, database_url, env) for n in range(3)]
        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            client = httpx.Client(base_url=api.url, headers=api.headers(), timeout=60)

            def scalar(sql: str) -> int:
                with engine.connect() as conn:
                    return int(conn.execute(text(sql)).scalar_one())

            def post(first: int, last: int) -> None:
                for start in range(first, last, BATCH):
                    body = b"\n".join(
                        orjson.dumps(
                            sshd_alert(n, srcip=attacker(n % ATTACKERS), level=12, minutes=n / 2000)
                        )
                        for n in range(start, min(start + BATCH, last))
                    )
                    r = client.post(
                        "/api/v1/alerts/wazuh",
                        content=body,
                        headers={"content-type": "application/x-ndjson"},
                    )
                    assert r.status_code == 202, r.text
                    assert r.json()["accepted"] == min(BATCH, last - start)

            post(0, ALERTS // 2)
            # Kill worker 1 while it holds work: alerts still pending, runs and Jira calls under
            # way (the next issue create lands in Jira and its answer never comes).
            wait_for(lambda: jira.count_created() >= 20, 60, "the first Jira issues")
            jira.fail_after_commit(1, "hang")
            wait_for(lambda: scalar("SELECT count(*) FROM playbook_runs") > 0, 30, "runs")
            # The second half arrives while worker 1 dies: it is killed with alerts pending.
            second = threading.Thread(target=post, args=(ALERTS // 2, ALERTS))
            second.start()
            wait_for(
                lambda: scalar("SELECT count(*) FROM alerts WHERE state = 'pending'") > 0,
                60,
                "alerts waiting to be folded",
            )
            pending_at_kill = scalar("SELECT count(*) FROM alerts WHERE state = 'pending'")
            workers[1].kill()
            second.join(120)

            def settled() -> bool:
                return (
                    scalar("SELECT count(*) FROM alerts WHERE state = 'pending'") == 0
                    and scalar("SELECT count(*) FROM playbook_runs WHERE status <> 'succeeded'")
                    == 0
                    and scalar("SELECT count(*) FROM outbox WHERE state <> 'done'") == 0
                    and scalar("SELECT count(*) FROM playbook_runs") == ATTACKERS
                )

            def state() -> str:
                with engine.connect() as conn:
                    rows = [
                        conn.execute(text(sql)).all()
                        for sql in (
                            "SELECT state, count(*) FROM alerts GROUP BY state",
                            "SELECT status, count(*) FROM playbook_runs GROUP BY status",
                            "SELECT state, kind, count(*) FROM outbox GROUP BY state, kind",
                            "SELECT count(*) FROM cases",
                        )
                    ]
                return f"{rows}, jira created {jira.count_created()}"

            wait_for(settled, 240, "every alert, run and effect to be done", state)
            # The survivors did the work; the killed worker's heartbeat row stays behind.
            alive = scalar(
                "SELECT count(*) FROM workers WHERE role = 'worker' "
                "AND seen_at > now() - interval '60 seconds'"
            )
        finally:
            client.close()
            for w in workers:
                if w.proc.poll() is None:
                    w.stop()
            api.stop()

        assert pending_at_kill > 0  # the kill landed while there was work to take over
        assert alive >= 2
        with engine.connect() as conn:
            assert scalar("SELECT count(*) FROM alerts") == ALERTS
            # Every attacker's 50 alerts folded into one case, and that case counts them all.
            per_key = conn.execute(
                text(
                    "SELECT a.case_id, count(*) AS n, max(c.alert_count) AS counted, "
                    "count(DISTINCT c.fold_key) AS keys FROM alerts a "
                    "JOIN cases c ON c.id = a.case_id GROUP BY a.case_id"
                )
            ).all()
            assert len(per_key) == ATTACKERS
            assert all(r.n == ALERTS // ATTACKERS == r.counted and r.keys == 1 for r in per_key)
            keys = conn.execute(text("SELECT fold_key FROM cases")).scalars().all()
            assert len(keys) == len(set(keys)) == ATTACKERS
            # One run per new case, and one comment from it per case.
            comments = Counter(
                conn.execute(
                    text("SELECT case_id FROM case_comments WHERE content LIKE 'brute force%'")
                ).scalars()
            )
            assert len(comments) == ATTACKERS and set(comments.values()) == {1}
        engine.dispose()
        # Jira: exactly one issue per case, each with exactly the playbook's one comment.
        assert jira.count_created() == ATTACKERS == len(jira.issues)
        labels = [lab for i in jira.issues.values() for lab in i.labels if "case-" in lab]
        assert len(set(labels)) == ATTACKERS
        for issue in jira.issues.values():
            texts = [c.text for c in issue.comments]
            assert len(texts) == 1 and texts[0].startswith("brute force"), (issue.key, texts)
