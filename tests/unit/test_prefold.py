"""The tailer's fold helper: the same cases as folding alone, and nothing lost when it dies."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from support.alerts import SAMPLES, fim_alert, sample, sshd_alert

from casefold.config import Settings
from casefold.folding.hints import FoldHint, FoldHints
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.store.tables import alerts, case_events, case_observables, cases, tail_rejects

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the helper runs only with two or more CPUs"
)


def alert_lines() -> bytes:
    """Alerts that fold several ways: brute force from three addresses, file changes on two
    agents, every real sample, a repeat, a line that is not JSON and an alert without a rule."""
    docs: list[dict[str, Any]] = []
    for n in range(120):
        docs.append(sshd_alert(n, srcip=f"203.0.113.{n % 3}", minutes=n / 10))
    for n in range(40):
        docs.append(fim_alert(n, agent_id=f"01{n % 2}", minutes=n))
    for path in sorted(SAMPLES.glob("*.json")):
        doc = sample(path.name)
        if "rule" in doc or "_source" in doc:
            docs.append(doc.get("_source", doc))
    docs.append(sshd_alert(7, srcip="203.0.113.1", minutes=0.7))  # already in the file
    out = [orjson.dumps(d) for d in docs]
    out.insert(50, b'{"rule": {"id": "5712"')  # cut short
    out.insert(90, orjson.dumps({"timestamp": "2026-11-20T10:00:00.000+0000", "id": "1.2"}))
    return b"\n".join(out) + b"\n"


def follow(tmp_path: Path, name: str, data: bytes, *, helper: bool) -> Runtime:
    logs = tmp_path / name / "alerts"
    logs.mkdir(parents=True)
    live = logs / "alerts.json"
    live.write_bytes(data)
    settings = Settings(
        data_dir=tmp_path / name / "data",
        tail_alerts_json=live,
        tail_batch_lines=16,
        tail_fold_helper=helper,
    )
    return Runtime(settings)


def wait_folded(rt: Runtime, expected: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.engine.connect() as conn:
            states = list(conn.scalars(select(alerts.c.state)))
        if len(states) == expected and "pending" not in states:
            return
        time.sleep(0.05)
    raise AssertionError(f"{len(states)} alerts stored, states {set(states)}")


def outcome(rt: Runtime) -> dict[str, Any]:
    """Everything folding decides, without ids and the folding run's own clock."""
    with rt.engine.connect() as conn:
        keys = {
            r.id: (r.fold_rule, r.fold_key)
            for r in conn.execute(select(cases.c.id, cases.c.fold_rule, cases.c.fold_key))
        }
        return {
            "alerts": sorted(
                (r.dedup_key, r.state, r.fold_rule, keys.get(r.case_id), r.normalized)
                for r in conn.execute(select(alerts))
            ),
            "cases": sorted(
                (r.fold_rule, r.fold_key, r.alert_count, r.severity, r.summary, r.description)
                + (r.first_seen, r.last_seen)
                for r in conn.execute(select(cases))
            ),
            "reasons": sorted(
                (keys[r.case_id], r.detail["reason"])
                for r in conn.execute(
                    select(case_events).where(case_events.c.kind == "alert_added")
                )
            ),
            "observables": sorted(
                (keys[r.case_id], r.type, r.value, r.kind, r.public, r.alert_count)
                + (r.first_seen, r.last_seen)
                for r in conn.execute(select(case_observables))
            ),
            "rejects": sorted((r.offset, r.reason) for r in conn.execute(select(tail_rejects))),
        }


def test_the_helper_folds_exactly_as_folding_alone(tmp_path: Path):
    data = alert_lines()
    stored = len(data.splitlines()) - 3  # the two bad lines and the repeat
    results = {}
    for helper in (True, False):
        rt = follow(tmp_path, f"helper-{helper}", data, helper=helper)
        rt.start()
        try:
            assert (rt.prefolder is not None) is helper
            wait_folded(rt, stored)
            results[helper] = outcome(rt)
            if helper:  # the helper did decide them: this is not folding alone twice
                assert rt.folder.hinted >= stored - 16
        finally:
            rt.stop()
    assert results[True] == results[False]
    assert len(results[True]["rejects"]) == 2
    assert {c[0] for c in results[True]["cases"]} >= {"auth-bruteforce", "file-integrity"}


def test_alerts_whose_hints_were_dropped_fold_beside_hinted_ones(tmp_path: Path):
    """With hints dropped for room, a folding batch mixes hinted alerts and alerts folding
    reads back from the store; the outcome is still that of folding alone."""
    data = alert_lines()
    stored = len(data.splitlines()) - 3
    alone = follow(tmp_path, "alone", data, helper=False)
    alone.start()
    try:
        wait_folded(alone, stored)
        expected = outcome(alone)
    finally:
        alone.stop()
    rt = follow(tmp_path, "dropped", data, helper=True)
    # Room for fewer hints than a batch has lines (16), and no wait: every batch loses some,
    # and the last batch's stay to be taken.
    rt.fold_hints.capacity, rt.fold_hints.wait_seconds = 10, 0.0
    rt.start()
    try:
        wait_folded(rt, stored)
        assert 0 < rt.folder.hinted < stored  # some decided ahead, some not
        assert outcome(rt) == expected
    finally:
        rt.stop()


def test_a_killed_helper_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    first = b"".join(orjson.dumps(sshd_alert(n, minutes=n / 60)) + b"\n" for n in range(200))
    rt = follow(tmp_path, "killed", first, helper=True)
    rt.start()
    try:
        wait_folded(rt, 200)
        helpers = multiprocessing.active_children()
        assert helpers, "no helper process was started"
        for proc in helpers:
            os.kill(proc.pid, signal.SIGKILL)
        more = b"".join(
            orjson.dumps(sshd_alert(n, minutes=n / 60)) + b"\n" for n in range(200, 500)
        )
        with caplog.at_level(logging.ERROR, logger="casefold.folding"):
            with open(rt.settings.tail_alerts_json, "ab") as f:  # type: ignore[arg-type]
                f.write(more)
            wait_folded(rt, 500)
        assert caplog.text.count("the tailer reads its lines itself") == 1
        with rt.engine.connect() as conn:
            ids = list(conn.scalars(select(alerts.c.source_id)))
            counts = list(conn.scalars(select(cases.c.alert_count)))
        assert sorted(ids) == sorted(str(sshd_alert(n, minutes=n / 60)["id"]) for n in range(500))
        assert counts == [500]  # one brute force from one address, one case
    finally:
        rt.stop()


def hint(n: int) -> FoldHint:
    alert = parse_wazuh_alert(sshd_alert(n))
    return FoldHint(alert, b"{}", "{}", 0, "5712/203.0.113.7")


def test_hints_wait_for_room_then_drop_the_oldest():
    hints = FoldHints(capacity=4, wait_seconds=0.2)
    hints.add({f"k{n}": hint(n) for n in range(3)})
    started = time.monotonic()
    hints.add({f"k{n}": hint(n) for n in range(3, 6)})  # no room: waits, then drops k0 and k1
    assert time.monotonic() - started >= 0.2
    assert len(hints) == 4
    assert set(hints.take(["k0", "k1", "k2", "k5", "nope"])) == {"k2", "k5"}
    assert len(hints) == 2

    # Room made while waiting lets the tailer go on at once, dropping nothing.
    hints = FoldHints(capacity=2, wait_seconds=30)
    hints.add({"a": hint(1), "b": hint(2)})
    threading.Timer(0.1, hints.take, args=(["a", "b"],)).start()
    started = time.monotonic()
    hints.add({"c": hint(3)})
    assert time.monotonic() - started < 10
    assert set(hints.take(["c"])) == {"c"}


def test_a_failing_fold_in_the_tailers_transaction_stops_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Folding runs inside each tailer batch's transaction; when it fails, the batch is stored
    again without it and the folding loop folds the alerts on its own."""
    data = b"".join(orjson.dumps(sshd_alert(n, minutes=n / 60)) + b"\n" for n in range(300))
    rt = follow(tmp_path, "failing", data, helper=False)
    real = rt.folder.fold_pending
    calls: list[int | None] = []

    def fails_once(conn: Any, limit: int | None = None) -> Any:
        calls.append(limit)
        if len(calls) == 1:
            raise RuntimeError("disk says no")
        return real(conn, limit)

    rt.folder.fold_pending = fails_once  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        rt.start()
        try:
            wait_folded(rt, 300)
            with rt.engine.connect() as conn:
                counts = list(conn.scalars(select(cases.c.alert_count)))
                stored = len(list(conn.scalars(select(alerts.c.id))))
        finally:
            rt.stop()
    assert "folding a stored batch failed" in caplog.text
    assert stored == 300 and counts == [300]
    # The first try was the tailer's (one more than its 16 lines, to see whether more wait).
    assert calls[0] == 17
