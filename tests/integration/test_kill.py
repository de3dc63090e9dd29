"""Crash safety: SIGKILL `casefold serve` under load, restart it, and lose nothing.

A client thread posts 5,000 distinct Wazuh alerts (single alerts and small NDJSON batches) and
keeps retrying whatever was not acknowledged with a 202. Meanwhile the server is SIGKILLed twice,
at seeded points, and restarted on the same data dir. Afterwards every acknowledged alert must be
stored exactly once, under the id its acknowledgement named, and once folding settles every
stored alert must belong to a case whose counters add up.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from support.alerts import fim_alert, sshd_alert
from support.server import ServerProcess

pytestmark = pytest.mark.slow

SEED = 5712
TOTAL = 5000
KILL_AFTER_ACKS = ((900, 1900), (2800, 3900))  # each kill lands at a seeded point in a range
TEST_DEADLINE_S = 150.0
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
NODE = "wazuh-master"
SRC_IPS = [f"203.0.113.{n}" for n in range(1, 9)] + [f"198.51.100.{n}" for n in range(1, 5)]
BASE_EPOCH = 1_763_632_800  # 2025-11-20T10:00:00Z


def make_alerts(rng: random.Random) -> list[dict[str, Any]]:
    """TOTAL alerts with distinct (node, id): sshd from a dozen addresses, FIM on three agents."""
    out: list[dict[str, Any]] = []
    for n in range(TOTAL):
        minutes = n / 60  # one alert a second, so the fold windows see a realistic spread
        if rng.random() < 0.8:
            alert = sshd_alert(
                n, srcip=rng.choice(SRC_IPS), minutes=minutes, rule_id=rng.choice(("5710", "5712"))
            )
        else:
            alert = fim_alert(n, agent_id=rng.choice(("010", "011", "012")), minutes=minutes)
        alert["id"] = f"{BASE_EPOCH + n}.{1_000_000 + 613 * n}"
        alert["cluster"] = {"name": "wazuh", "node": NODE}
        out.append(alert)
    assert len({a["id"] for a in out}) == TOTAL
    return out


def make_chunks(rng: random.Random, n: int) -> list[list[int]]:
    """Indices into the alert list: ~40% single posts, the rest NDJSON batches of 2..25."""
    chunks: list[list[int]] = []
    i = 0
    while i < n:
        size = 1 if rng.random() < 0.4 else rng.randint(2, 25)
        chunks.append(list(range(i, min(n, i + size))))
        i += size
    return chunks


class Client(threading.Thread):
    """Posts every chunk until it is acknowledged; survives the server disappearing."""

    def __init__(
        self,
        srv: ServerProcess,
        alerts: list[dict[str, Any]],
        chunks: list[list[int]],
        deadline: float,
    ) -> None:
        super().__init__(name="kill-test-client", daemon=True)
        self.srv = srv
        self.alerts = alerts
        self.chunks = chunks
        self.deadline = deadline
        self.token = srv.token
        self.acked: dict[str, int] = {}  # Wazuh id -> alert id named in the 202
        self.acked_count = 0  # read by the main thread (int writes are atomic under the GIL)
        self.retries = 0
        self.failures: Counter[str] = Counter()
        self.problems: list[str] = []
        self.error: BaseException | None = None

    def body(self, chunk: list[int]) -> tuple[bytes, str]:
        if len(chunk) == 1:
            return orjson.dumps(self.alerts[chunk[0]]), "application/json"
        lines = b"".join(orjson.dumps(self.alerts[i]) + b"\n" for i in chunk)
        return lines, "application/x-ndjson"

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.srv.url, headers=headers, timeout=REQUEST_TIMEOUT) as http:
            for chunk in self.chunks:
                content, ctype = self.body(chunk)
                while True:
                    if time.monotonic() > self.deadline:
                        raise TimeoutError(f"client gave up with {self.acked_count} acknowledged")
                    try:
                        r = http.post(
                            "/api/v1/alerts/wazuh", content=content, headers={"content-type": ctype}
                        )
                    except httpx.TransportError as exc:  # refused, reset, timed out: retry
                        self.failures[type(exc).__name__] += 1
                        self.retries += 1
                        time.sleep(0.05)
                        continue
                    if r.status_code != 202:
                        # 5xx while the store is reopening would be retried; record it too.
                        self.failures[f"http {r.status_code}"] += 1
                        self.retries += 1
                        if r.status_code < 500:
                            self.problems.append(f"{r.status_code}: {r.text[:300]}")
                            raise AssertionError(f"unexpected {r.status_code}: {r.text[:300]}")
                        time.sleep(0.05)
                        continue
                    self._record(chunk, r.json())
                    break

    def _record(self, chunk: list[int], doc: dict[str, Any]) -> None:
        results = doc["results"]
        assert doc["rejected"] == 0, doc
        assert doc["accepted"] + doc["duplicates"] == len(chunk), doc
        assert [res["index"] for res in results] == list(range(len(chunk))), doc
        for i, res in zip(chunk, results, strict=True):
            wazuh_id = self.alerts[i]["id"]
            previous = self.acked.get(wazuh_id)
            if previous is not None and previous != res["id"]:
                self.problems.append(f"{wazuh_id} acknowledged as {previous} and {res['id']}")
            self.acked[wazuh_id] = res["id"]
        self.acked_count = len(self.acked)


def page_all(srv: ServerProcess, path: str, deadline: float, **params: Any) -> list[dict]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        assert time.monotonic() < deadline, f"paging {path} took too long"
        q = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        r = httpx.get(srv.url + path, params=q, headers=srv.headers(), timeout=30)
        assert r.status_code == 200, r.text
        doc = r.json()
        items.extend(doc["items"])
        cursor = doc["next_cursor"]
        if not cursor:
            return items


def wait_until(cond: Callable[[], bool], deadline: float, what: str) -> None:
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_sigkill_under_load_loses_and_duplicates_nothing(
    server_factory: Callable[..., ServerProcess],
) -> None:
    started = time.monotonic()
    deadline = started + TEST_DEADLINE_S
    rng = random.Random(SEED)
    alerts = make_alerts(rng)
    chunks = make_chunks(rng, len(alerts))
    kill_points = [rng.randint(lo, hi) for lo, hi in KILL_AFTER_ACKS]

    srv = server_factory("kill").start()
    client = Client(srv, alerts, chunks, deadline)
    client.start()
    kills: list[dict[str, Any]] = []
    try:
        for point in kill_points:
            wait_until(
                lambda p=point: client.acked_count >= p or not client.is_alive(),
                deadline,
                f"{point} acknowledgements",
            )
            assert client.is_alive(), f"client stopped early: {client.error!r}"
            at = client.acked_count
            srv.kill()  # SIGKILL: no shutdown code runs
            down = time.monotonic()
            time.sleep(0.2)  # let the client hit the dead port
            srv.start()
            kills.append({"acked_at_kill": at, "down_s": round(time.monotonic() - down, 2)})
        client.join(max(0.0, deadline - time.monotonic()))
        assert not client.is_alive(), "client did not finish before the deadline"
    finally:
        if client.is_alive():
            client.deadline = 0  # makes it stop at its next attempt
    if client.error is not None:
        raise client.error
    assert not client.problems, client.problems[:10]
    print(
        f"\nkills: {kills}; retries {client.retries} {dict(client.failures)}; "
        f"load done after {time.monotonic() - started:.1f} s"
    )

    # Every alert was acknowledged, and each kill happened with work still outstanding.
    assert len(kills) == len(kill_points)
    assert all(k["acked_at_kill"] < TOTAL for k in kills), kills
    expected = {a["id"] for a in alerts}
    assert set(client.acked) == expected

    # Stored exactly once, under the id the acknowledgement named.
    stored = page_all(srv, "/api/v1/alerts", deadline, sort="id")
    counts = Counter((s["node"], s["source_id"]) for s in stored)
    dupes = [k for k, c in counts.items() if c > 1]
    assert not dupes, f"{len(dupes)} alerts stored more than once, e.g. {dupes[:5]}"
    assert {sid for node, sid in counts if node == NODE} == expected
    assert len(stored) == TOTAL
    wrong_ids = [
        (s["source_id"], s["id"], client.acked[s["source_id"]])
        for s in stored
        if client.acked[s["source_id"]] != s["id"]
    ]
    assert not wrong_ids, f"stored id differs from the acknowledged id: {wrong_ids[:5]}"

    # Folding settles, every alert is in a case, and the cases count each alert once.
    srv.wait_folded(timeout=max(1.0, min(60.0, deadline - time.monotonic())))
    stored = page_all(srv, "/api/v1/alerts", deadline, sort="id")
    assert len(stored) == TOTAL
    unfolded = [s for s in stored if s["state"] != "folded" or s["case_id"] is None]
    assert not unfolded, f"{len(unfolded)} alerts not in a case, e.g. {unfolded[:3]}"
    cases = page_all(srv, "/api/v1/cases", deadline, sort="id")
    per_case = Counter(s["case_id"] for s in stored)
    case_counts = {c["id"]: c["alert_count"] for c in cases}
    assert set(per_case) <= set(case_counts), "alerts point at cases that do not exist"
    mismatched = {
        cid: (n, case_counts[cid]) for cid, n in per_case.items() if case_counts[cid] != n
    }
    assert not mismatched, f"case alert_count != its alerts: {list(mismatched.items())[:5]}"
    assert sum(case_counts.values()) == TOTAL
    print(f"{len(cases)} cases; whole test {time.monotonic() - started:.1f} s")
