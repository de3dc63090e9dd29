"""Prometheus metrics: what this process did, what the store holds, and the optional listener.

Counters and histograms count this process's work: alerts received, playbook runs, enrichment
lookups, outbox deliveries. They are module-level because the code that feeds them (an intake
batch, a run's record) has no runtime at hand, and because they describe the process, not a
runtime. They stay out of prometheus_client's global default registry: each `MetricsExporter`
(one per Runtime) builds its own registry from them, the process and platform collectors and a
`StoreCollector`, so tests and several runtimes in one process never collide on a name.

The store's gauges (queue depth and lag, run and outbox states, open cases, tailer positions,
live workers) are read when scraped, cached a few seconds so that a storm of scrapes costs one
set of queries. Each query is served by an index and counts only what is bounded: the store can
hold millions of folded alerts and years of finished runs and delivered effects, which are never
counted (their rates are the counters').

Several processes (the API, workers) each export their own counters: sum them over instances.
The store's gauges are the same in every process: take max() over instances.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_wsgi_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Engine, Table, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from casefold.errors import ConfigError
from casefold.store.tables import (
    ALERT_PENDING,
    OPEN_STATUSES,
    OUTBOX_DEAD,
    OUTBOX_DELIVERING,
    OUTBOX_PENDING,
    RUN_QUEUED,
    RUN_RUNNING,
    alerts,
    cases,
    outbox,
    playbook_runs,
    tail_positions,
    workers,
)

log = logging.getLogger("casefold.metrics")

ALERTS_RECEIVED = Counter(
    "casefold_alerts_received",
    "Alerts received by intake, by source and outcome (stored, duplicate, rejected).",
    ["source", "outcome"],
    registry=None,
)
PLAYBOOK_RUN_SECONDS = Histogram(
    "casefold_playbook_run_seconds",
    "Finished playbook runs: seconds from first claim to the recorded outcome (waits included).",
    ["playbook", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=None,
)
ENRICHMENT_LOOKUPS = Counter(
    "casefold_enrichment_lookups",
    "Threat-intel lookups by provider and result (hit, miss, error, over_budget, skipped, "
    "uncached).",
    ["provider", "result"],
    registry=None,
)
OUTBOX_DELIVERIES = Counter(
    "casefold_outbox_deliveries",
    "Outbox delivery attempts by effect kind and outcome (done, retry, dead).",
    ["kind", "outcome"],
    registry=None,
)
_INSTRUMENTS = (ALERTS_RECEIVED, PLAYBOOK_RUN_SECONDS, ENRICHMENT_LOOKUPS, OUTBOX_DELIVERIES)

# Store gauges: the states worth watching. Done effects and finished runs grow without bound.
RUN_STATES = (RUN_QUEUED, RUN_RUNNING)
OUTBOX_STATES = (OUTBOX_PENDING, OUTBOX_DELIVERING, OUTBOX_DEAD)
WORKER_SEEN = timedelta(seconds=60)  # a worker not seen for this long is not counted


def count_intake(source: str, stored: int, duplicates: int, rejected: int) -> None:
    """Account for one intake batch: a few increments per batch, never one per alert."""
    for outcome, n in (("stored", stored), ("duplicate", duplicates), ("rejected", rejected)):
        if n:
            ALERTS_RECEIVED.labels(source, outcome).inc(n)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives naive UTC


@dataclass(frozen=True)
class TailPosition:
    name: str
    offset: int
    lag: int  # bytes of the file not committed yet
    lines: int
    bad_lines: int
    age: float  # seconds since the last commit


@dataclass
class StoreSnapshot:
    """The store's numbers at one moment, as `read_store` finds them."""

    pending: int = 0
    oldest_pending_seconds: float = 0.0
    runs: dict[str, int] = field(default_factory=dict)
    effects: dict[str, int] = field(default_factory=dict)
    open_cases: int = 0
    tails: list[TailPosition] = field(default_factory=list)
    workers: dict[str, int] = field(default_factory=dict)


def read_store(conn: Connection, now: datetime) -> StoreSnapshot:
    """One query per figure, each a range of an index (see store/tables.py) or a small table."""
    snap = StoreSnapshot()
    is_pending = alerts.c.state == ALERT_PENDING  # the predicate of the partial ix_alerts_pending
    snap.pending = conn.execute(
        select(func.count()).select_from(alerts).where(is_pending)
    ).scalar_one()
    oldest = conn.execute(
        select(alerts.c.received_at).where(is_pending).order_by(alerts.c.id).limit(1)
    ).scalar()
    if oldest is not None:
        snap.oldest_pending_seconds = max(0.0, (now - _utc(oldest)).total_seconds())
    snap.runs = _by_state(conn, playbook_runs, playbook_runs.c.status, RUN_STATES)
    snap.effects = _by_state(conn, outbox, outbox.c.state, OUTBOX_STATES)
    snap.open_cases = conn.execute(
        select(func.count()).select_from(cases).where(cases.c.status.in_(OPEN_STATUSES))
    ).scalar_one()
    snap.tails = [
        TailPosition(
            name=row.name,
            offset=row.offset,
            lag=max(0, row.file_size - row.offset),
            lines=row.lines,
            bad_lines=row.bad_lines,
            age=max(0.0, (now - _utc(row.updated_at)).total_seconds()),
        )
        for row in conn.execute(select(tail_positions).order_by(tail_positions.c.name))
    ]
    snap.workers = {
        role: int(n)
        for role, n in conn.execute(
            select(workers.c.role, func.count())
            .where(workers.c.seen_at >= now - WORKER_SEEN)
            .group_by(workers.c.role)
        )
    }
    return snap


def _by_state(
    conn: Connection, table: Table, column: ColumnElement[Any], states: tuple[str, ...]
) -> dict[str, int]:
    """Rows per state, for the given states only (0 for a state with none)."""
    stmt = select(column, func.count()).select_from(table).where(column.in_(states))
    found = {state: int(n) for state, n in conn.execute(stmt.group_by(column))}
    return {state: found.get(state, 0) for state in states}


def snapshot_families(snap: StoreSnapshot) -> list[Metric]:
    """The snapshot as Prometheus metric families."""
    out: list[Metric] = [
        GaugeMetricFamily("casefold_store_up", "1 when the store could be read.", value=1),
        GaugeMetricFamily(
            "casefold_alerts_pending", "Alerts stored, not yet folded.", value=snap.pending
        ),
        GaugeMetricFamily(
            "casefold_alerts_pending_oldest_seconds",
            "Age of the oldest alert not yet folded (0 when none is pending).",
            value=snap.oldest_pending_seconds,
        ),
        GaugeMetricFamily(
            "casefold_cases_open", "Cases not resolved or closed.", value=snap.open_cases
        ),
        _labelled(
            "casefold_playbook_runs", "Playbook runs not finished, by status.", "status", snap.runs
        ),
        _labelled(
            "casefold_outbox_effects", "Outbox effects not done, by state.", "state", snap.effects
        ),
        _labelled(
            "casefold_workers", "Processes seen in the last minute, by role.", "role", snap.workers
        ),
    ]
    offset = GaugeMetricFamily(
        "casefold_tail_offset_bytes",
        "Tailer: offset after its last committed line.",
        labels=["name"],
    )
    lag = GaugeMetricFamily(
        "casefold_tail_lag_bytes", "Tailer: bytes of its file not committed yet.", labels=["name"]
    )
    lines = CounterMetricFamily("casefold_tail_lines", "Tailer: lines consumed.", labels=["name"])
    bad = CounterMetricFamily(
        "casefold_tail_bad_lines", "Tailer: lines that were not alerts.", labels=["name"]
    )
    age = GaugeMetricFamily(
        "casefold_tail_checkpoint_age_seconds",
        "Tailer: seconds since its last commit.",
        labels=["name"],
    )
    for tail in snap.tails:
        offset.add_metric([tail.name], tail.offset)
        lag.add_metric([tail.name], tail.lag)
        lines.add_metric([tail.name], tail.lines)
        bad.add_metric([tail.name], tail.bad_lines)
        age.add_metric([tail.name], tail.age)
    return [*out, offset, lag, lines, bad, age]


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


class StoreCollector(Collector):
    """Reads the store when scraped; one read per `cache_seconds`, however many scrapes."""

    def __init__(self, engine: Engine, *, cache_seconds: float = 3.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()  # concurrent scrapes wait for one read
        self._families: list[Metric] = []
        self._read_at: float | None = None

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self.cache_seconds:
                self._families = self._read()
                self._read_at = now
            return list(self._families)

    def _read(self) -> list[Metric]:
        try:
            with self.engine.connect() as conn:
                return snapshot_families(read_store(conn, datetime.now(UTC)))
        except SQLAlchemyError as exc:
            # The process's own counters are still worth scraping; say the store part is missing.
            reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
            log.warning("metrics: cannot read the store: %s", reason)
            return [
                GaugeMetricFamily("casefold_store_up", "1 when the store could be read.", value=0)
            ]


class MetricsExporter:
    """One runtime's metrics: its registry, their exposition, the optional plain listener."""

    def __init__(
        self, engine: Engine, *, host: str = "127.0.0.1", port: int = 0, cache_seconds: float = 3.0
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        for instrument in _INSTRUMENTS:
            self.registry.register(instrument)
        self.registry.register(StoreCollector(engine, cache_seconds=cache_seconds))
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type): the text format, or OpenMetrics when the scraper asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def start(self) -> None:
        """Serve the metrics on host:port (a thread), unless the port is 0."""
        if not self.port or self._server is not None:
            return
        try:
            self._server, self._thread = start_wsgi_server(self.port, self.host, self.registry)
        except OSError as exc:
            raise ConfigError(
                "metrics_port", f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
