"""Prometheus metrics as a scraper sees them, on SQLite and PostgreSQL: GET /metrics behind a
token, intake counted by outcome, the queue and its lag, playbook run durations, outbox states and
deliveries, enrichment hits and misses, tailer positions, live workers, and the separate listener.

Counters are process-wide, so tests compare a scrape after the action with one before it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fakes.crowdsec import CrowdSecFake
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import insert, update
from support.alerts import sshd_alert

from casefold.access import Role, create_token
from casefold.app import create_app
from casefold.config import Settings
from casefold.connectors.http import ProviderError
from casefold.errors import ConfigError
from casefold.intake.files import ingest_files
from casefold.metrics import MetricsExporter
from casefold.outbox import store as outbox_store
from casefold.outbox.worker import Attempt, Delivered, DeliveryWorker, RetryLater
from casefold.runtime import Runtime
from casefold.store.tables import alerts, tail_positions, workers

URL = "/api/v1/alerts/wazuh"
CTI_KEY = "test-cti-key-0123"


# -- scraping ---------------------------------------------------------------------------------


@dataclass
class Scrape:
    samples: list[Sample]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls([s for f in text_string_to_metric_families(text) for s in f.samples])

    def value(self, metric: str, /, **labels: str) -> float:
        """The sample's value; 0 when no sample has these labels (a counter not yet counted)."""
        found = [
            s.value
            for s in self.samples
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, (metric, labels, found)
        return found[0] if found else 0.0

    def labels(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name}


@dataclass
class Quiet:
    """An app over a runtime that folds, runs and delivers nothing by itself (the test does), and
    reads the store at every scrape."""

    client: TestClient
    runtime: Runtime
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path: str, role: str = "ingest", **kw: Any) -> httpx.Response:
        return self.client.post(path, headers=self.headers(role), **kw)

    def scrape(self) -> Scrape:
        r = self.client.get("/metrics", headers=self.headers("viewer"))
        assert r.status_code == 200, r.text
        return Scrape.parse(r.text)


def start_runtime(settings: Settings) -> Runtime:
    runtime = Runtime(settings)
    runtime.metrics = MetricsExporter(
        runtime.engine, host=settings.metrics_host, port=settings.metrics_port, cache_seconds=0
    )
    runtime.start(folding=False)
    runtime.bootstrap_admin_token()
    return runtime


@pytest.fixture
def quiet(tmp_path: Path, database_url: str | None) -> Iterator[Quiet]:
    runtime = start_runtime(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        quiet = Quiet(TestClient(create_app(runtime)), runtime)
        for role in (Role.ADMIN, Role.VIEWER, Role.INGEST):
            quiet.tokens[role.value] = runtime.writer.run(
                lambda conn, r=role: create_token(conn, f"metrics-{r.value}", r)
            )
        yield quiet
    finally:
        runtime.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the route --------------------------------------------------------------------------------


def test_metrics_need_a_token_that_may_read(quiet: Quiet):
    assert quiet.client.get("/metrics").status_code == 401
    assert quiet.client.get("/metrics", headers=quiet.headers("ingest")).status_code == 403
    r = quiet.client.get("/metrics", headers=quiet.headers("viewer"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    scrape = Scrape.parse(r.text)
    assert scrape.value("casefold_store_up") == 1
    assert scrape.value("casefold_alerts_pending") == 0
    assert scrape.labels("casefold_outbox_effects", "state") == {"pending", "delivering", "dead"}
    assert scrape.labels("casefold_playbook_runs", "status") == {"queued", "running"}
    assert quiet.tokens["viewer"] not in r.text


def test_openmetrics_when_the_scraper_asks_for_it(quiet: Quiet):
    r = quiet.client.get(
        "/metrics",
        headers={**quiet.headers("viewer"), "Accept": "application/openmetrics-text"},
    )
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


# -- intake -----------------------------------------------------------------------------------


def received(scrape: Scrape, source: str, outcome: str) -> float:
    return scrape.value("casefold_alerts_received_total", source=source, outcome=outcome)


def test_every_posted_alert_is_counted_once_by_outcome(quiet: Quiet):
    before = quiet.scrape()
    batch = [sshd_alert(i) for i in range(5)] + [sshd_alert(0), sshd_alert(1)]
    batch += [{"rule": "not an alert"}, 42]
    first = quiet.post(URL, json=batch).json()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (5, 2, 2)
    # The token is cached now: this one takes the fast path.
    again = quiet.post(URL, json=batch).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 7, 2)
    # Nothing usable at all: no alert names a source.
    assert quiet.post(URL, json=[42]).status_code == 422
    after = quiet.scrape()
    assert received(after, "wazuh", "stored") - received(before, "wazuh", "stored") == 5
    assert received(after, "wazuh", "duplicate") - received(before, "wazuh", "duplicate") == 9
    assert received(after, "wazuh", "rejected") - received(before, "wazuh", "rejected") == 4
    assert received(after, "unknown", "rejected") - received(before, "unknown", "rejected") == 1


def test_alerts_json_files_are_counted_like_posted_ones(quiet: Quiet, tmp_path: Path):
    path = tmp_path / "alerts.json"
    lines = [sshd_alert(1), sshd_alert(2), sshd_alert(1), {"rule": "not an alert"}]
    path.write_bytes(b"\n".join(orjson.dumps(doc) for doc in lines) + b"\n")
    before = quiet.scrape()
    report = ingest_files([path], quiet.runtime.writer)
    assert (report.stored, report.duplicates, report.rejected) == (2, 1, 1)
    after = quiet.scrape()
    assert received(after, "wazuh", "stored") - received(before, "wazuh", "stored") == 2
    assert received(after, "wazuh", "duplicate") - received(before, "wazuh", "duplicate") == 1
    assert received(after, "wazuh", "rejected") - received(before, "wazuh", "rejected") == 1


def test_queue_depth_and_lag_until_the_alerts_are_folded(quiet: Quiet):
    assert quiet.post(URL, json=[sshd_alert(i) for i in range(3)]).status_code == 202
    scrape = quiet.scrape()
    assert scrape.value("casefold_alerts_pending") == 3
    assert 0 <= scrape.value("casefold_alerts_pending_oldest_seconds") < 60
    # The lag is the age of the oldest alert still waiting.
    quiet.runtime.writer.run(
        lambda conn: conn.execute(
            update(alerts)
            .where(alerts.c.id == 1)
            .values(received_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    )
    assert quiet.scrape().value("casefold_alerts_pending_oldest_seconds") >= 600
    quiet.runtime.folding.drain()
    scrape = quiet.scrape()
    assert scrape.value("casefold_alerts_pending") == 0
    assert scrape.value("casefold_alerts_pending_oldest_seconds") == 0
    assert scrape.value("casefold_cases_open") == 1  # the three sshd alerts fold into one case


def test_store_gauges_are_read_once_per_cache_window(quiet: Quiet):
    exporter = MetricsExporter(quiet.runtime.engine, cache_seconds=60)
    first = Scrape.parse(exporter.render(None)[0].decode())
    assert quiet.post(URL, json=sshd_alert(1)).status_code == 202
    second = Scrape.parse(exporter.render(None)[0].decode())
    assert first.value("casefold_alerts_pending") == second.value("casefold_alerts_pending") == 0
    assert quiet.scrape().value("casefold_alerts_pending") == 1  # no cache: read now


# -- outbox -----------------------------------------------------------------------------------


def effect(n: int, kind: str) -> outbox_store.Effect:
    return outbox_store.Effect(target="test", kind=kind, chain=f"metrics-{n}", key=f"metrics-{n}")


def test_outbox_states_count_what_is_not_done(quiet: Quiet):
    now = datetime.now(UTC)

    def setup(conn: Any) -> None:
        outbox_store.enqueue(conn, [effect(n, "test.kind") for n in range(4)], now)
        outbox_store.mark_failed(conn, 1, "refused", now, retry_in=None)
        outbox_store.mark_failed(conn, 2, "refused", now, retry_in=None)
        outbox_store.mark_done(conn, 3, None, now)

    quiet.runtime.writer.run(setup)
    scrape = quiet.scrape()
    assert scrape.value("casefold_outbox_effects", state="pending") == 1
    assert scrape.value("casefold_outbox_effects", state="dead") == 2
    assert scrape.value("casefold_outbox_effects", state="delivering") == 0
    assert "done" not in scrape.labels("casefold_outbox_effects", "state")


def test_outbox_deliveries_are_counted_by_kind_and_outcome(quiet: Quiet):
    def refuse(_: Attempt) -> Delivered:
        raise ProviderError("test", "400 bad request")

    def later(_: Attempt) -> Delivered:
        raise RetryLater("not yet")

    kinds = {"metrics.ok": lambda _: Delivered("ok"), "metrics.refused": refuse}
    kinds["metrics.later"] = later
    quiet.runtime.writer.run(
        lambda conn: outbox_store.enqueue(conn, [effect(n, k) for n, k in enumerate(kinds)])
    )
    before = quiet.scrape()
    worker = DeliveryWorker(quiet.runtime.engine, quiet.runtime.writer, kinds)
    assert worker.work() == 3
    after = quiet.scrape()
    for kind, outcome in [
        ("metrics.ok", "done"),
        ("metrics.refused", "dead"),
        ("metrics.later", "retry"),
    ]:
        name = "casefold_outbox_deliveries_total"
        grown = after.value(name, kind=kind, outcome=outcome) - before.value(
            name, kind=kind, outcome=outcome
        )
        assert grown == 1, (kind, outcome)
    assert after.value("casefold_outbox_effects", state="dead") == 1
    assert after.value("casefold_outbox_effects", state="pending") == 1


# -- playbook runs and enrichment -------------------------------------------------------------

PLAYBOOK = """\
title: Reshape
trigger: {groups: [sshd]}
actions:
  - ref: ip
    action: core.transform.reshape
    args: {value: "${{ TRIGGER.data.data.srcip }}"}
"""


def test_a_finished_run_is_in_the_duration_histogram(api_factory: Any, tmp_path: Path):
    playbooks = tmp_path / "pb"
    playbooks.mkdir()
    (playbooks / "reshape.yml").write_text(PLAYBOOK)
    api = api_factory(playbooks_dir=playbooks)

    def scrape() -> Scrape:
        return Scrape.parse(api.get("/metrics").text)

    count = "casefold_playbook_run_seconds_count"
    labels = {"playbook": "reshape", "status": "succeeded"}
    before = scrape()
    assert api.post(URL, json=sshd_alert(1)).status_code == 202
    api.fold()
    api.runtime.playbooks.drain()
    after = scrape()
    assert after.value(count, **labels) - before.value(count, **labels) == 1
    total = "casefold_playbook_run_seconds_sum"
    assert after.value(total, **labels) >= before.value(total, **labels)


@pytest.fixture
def cti() -> Iterator[CrowdSecFake]:
    with CrowdSecFake({"1.2.3.4": "malicious"}, api_keys=[CTI_KEY], quota=1000) as fake:
        yield fake


def test_enrichment_hits_and_misses(api_factory: Any, cti: CrowdSecFake):
    api = api_factory(
        threat_intel={"crowdsec": {"url": cti.url}},
        secrets={"crowdsec_cti": {"CTI_API_KEY": CTI_KEY}},
    )

    def scrape() -> Scrape:
        return Scrape.parse(api.get("/metrics", role="admin").text)

    def lookups(s: Scrape, result: str) -> float:
        return s.value("casefold_enrichment_lookups_total", provider="crowdsec", result=result)

    before = scrape()
    for _ in range(2):
        r = api.post("/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "1.2.3.4"})
        assert r.status_code == 200
    private = api.post(
        "/api/v1/enrichment/lookup", json={"provider": "crowdsec", "value": "10.0.0.1"}
    )
    assert private.json()["skipped"] == "private address"
    # A provider nobody configured is refused and never becomes a label.
    api.post("/api/v1/enrichment/lookup", json={"provider": "nosuch", "value": "1.2.3.4"})
    after = scrape()
    assert cti.total == 1
    assert lookups(after, "miss") - lookups(before, "miss") == 1
    assert lookups(after, "hit") - lookups(before, "hit") == 1
    assert lookups(after, "skipped") - lookups(before, "skipped") == 1
    assert "nosuch" not in after.labels("casefold_enrichment_lookups_total", "provider")


# -- tailer and workers -----------------------------------------------------------------------


def test_tailer_positions_from_the_store(quiet: Quiet):
    now = datetime.now(UTC)
    quiet.runtime.writer.run(
        lambda conn: conn.execute(
            insert(tail_positions).values(
                name="manager:/var/ossec/logs/alerts/alerts.json",
                path="/var/ossec/logs/alerts/alerts.json",
                archive=None,
                device=2049,
                inode=1234,
                offset=1000,
                file_size=4096,
                lines=25,
                bad_lines=2,
                updated_at=now - timedelta(seconds=90),
            )
        )
    )
    scrape = quiet.scrape()
    name = {"name": "manager:/var/ossec/logs/alerts/alerts.json"}
    assert scrape.value("casefold_tail_offset_bytes", **name) == 1000
    assert scrape.value("casefold_tail_lag_bytes", **name) == 3096
    assert scrape.value("casefold_tail_lines_total", **name) == 25
    assert scrape.value("casefold_tail_bad_lines_total", **name) == 2
    assert 90 <= scrape.value("casefold_tail_checkpoint_age_seconds", **name) < 150


def test_workers_seen_in_the_last_minute(quiet: Quiet):
    now = datetime.now(UTC)
    rows = [
        ("h:1:a", "api", now),
        ("h:2:b", "worker", now - timedelta(seconds=5)),
        ("h:3:c", "worker", now - timedelta(seconds=10)),
        ("h:4:d", "worker", now - timedelta(minutes=10)),  # gone: not counted
    ]
    quiet.runtime.writer.run(
        lambda conn: conn.execute(
            insert(workers),
            [
                {"id": i, "role": role, "host": "h", "pid": 1, "started_at": at, "seen_at": at}
                for i, role, at in rows
            ],
        )
    )
    scrape = quiet.scrape()
    assert scrape.value("casefold_workers", role="api") == 1
    assert scrape.value("casefold_workers", role="worker") == 2


# -- the separate listener --------------------------------------------------------------------


def test_the_metrics_port_serves_without_a_token_on_its_host_only(tmp_path: Path):
    port = free_port()
    runtime = start_runtime(
        Settings(data_dir=tmp_path / "data", metrics_port=port, metrics_host="127.0.0.1")
    )
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        scrape = Scrape.parse(r.text)
        assert scrape.value("casefold_store_up") == 1
        assert scrape.labels("casefold_outbox_effects", "state") == {
            "pending",
            "delivering",
            "dead",
        }
        # Bound to 127.0.0.1 only: another loopback address finds nothing listening.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{port}/metrics")
    finally:
        runtime.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics")


def test_a_metrics_port_in_use_stops_start_up_naming_the_setting(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = Runtime(Settings(data_dir=tmp_path / "data", metrics_port=port))
        try:
            with pytest.raises(ConfigError, match="metrics_port"):
                runtime.start(folding=False)
        finally:
            runtime.stop()
