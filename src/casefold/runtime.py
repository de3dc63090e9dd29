"""The running service's parts, built from Settings: engine, writer, folding, token verifier.

Built once by `casefold serve` (or a test) and handed to `create_app`; nothing here is a
module-level global.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
from pathlib import Path

import httpx
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from casefold.access import Role, TokenVerifier, create_token, has_any_token
from casefold.actions import cases as actions_cases
from casefold.actions import core as actions_core
from casefold.actions import cti as actions_cti
from casefold.actions import outbound as actions_outbound
from casefold.actions import response as actions_response
from casefold.actions import wazuh as actions_wazuh
from casefold.actions.wazuh import build_wazuh_api
from casefold.cases.sla import SlaTargets, SlaWatcher
from casefold.config import Settings
from casefold.enrichment.auto import AutoEnricher
from casefold.enrichment.providers import build_enricher
from casefold.errors import ConfigError
from casefold.folding.apply import FoldedAlert, Folder
from casefold.folding.hints import FoldHints
from casefold.folding.rules import load_rules
from casefold.folding.worker import FoldingWorker
from casefold.intake.extrahop_poll import ExtraHopPoller
from casefold.intake.localfile import JsonLinesWriter
from casefold.intake.sink import AlertSink
from casefold.intake.tailer import AlertsTailer
from casefold.metrics import MetricsExporter
from casefold.outbox.sync import Sync
from casefold.playbooks.engine import PlaybookEngine
from casefold.playbooks.library import PlaybookLibrary
from casefold.prefold import Prefolder
from casefold.presence import Presence
from casefold.response.executor import ResponseExecutor, build_firewall
from casefold.response.policy import ResponsePolicy
from casefold.response.service import ResponseService
from casefold.sources.extrahop import check_risk_levels, parse_extrahop_detection
from casefold.store.db import Checkpointer, make_engine, migrate, refresh_statistics
from casefold.store.leader import LeaderLock
from casefold.store.notify import ALERTS, OUTBOX, RUNS, Listener
from casefold.store.writer import Writer

log = logging.getLogger("casefold")

BOOTSTRAP_TOKEN_NAME = "admin"


def tune_gc() -> None:
    """Keep the garbage collector from stalling acknowledgements.

    With default thresholds CPython ran a full collection every second or two under intake load,
    each a 60–75 ms pause of every thread, which alone set the p99 latency. Objects alive after
    start-up (modules, compiled statements, rules) are frozen out of collection, and young
    generations are collected less often; Casefold makes few reference cycles.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


# The built-in actions register themselves on import.
_ACTIONS = (
    actions_core,
    actions_cases,
    actions_cti,
    actions_wazuh,
    actions_outbound,
    actions_response,
)


# What a process runs: "all" (the default, one process), "api" (HTTP and intake only) or
# "worker" (folding, playbooks, enrichment, outbox, SLA checks and pollers; no HTTP).
ROLES = ("all", "api", "worker")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = load_rules(settings.folding_rules)
        self.engine: Engine = make_engine(settings)
        self.writer = Writer(self.engine)
        self.sink = AlertSink(self.writer)
        self.library = PlaybookLibrary(
            settings.playbooks_path, bundled=tuple(settings.bundled_playbooks)
        )
        self.library.load()
        secrets = settings.secret_values()
        # One HTTP client (connection pools) for every connector and playbook request.
        self.http = httpx.Client(timeout=30.0)
        self.enricher = build_enricher(settings, secrets, self.http, self.engine, self.writer)
        # Active responses: the policy, and the executor the outbox delivers them with.
        policy = ResponsePolicy(
            settings.response,
            own_hosts=[
                h for h in (settings.host, settings.wazuh.api_url) if h not in ("", "0.0.0.0", "::")
            ],
        )
        self.responses = ResponseService(settings.response, policy)
        executor = ResponseExecutor(
            self.engine,
            self.responses,
            wazuh=build_wazuh_api(settings, secrets, self.http),
            firewall=build_firewall(settings.response, secrets, self.http),
        )
        # Before the writer opens its connection: the outbox's planner rides on connections.
        self.sync = Sync(
            settings,
            secrets,
            self.http,
            self.engine,
            self.writer,
            extra_handlers=executor.handlers(),
        )
        try:
            levels = check_risk_levels(settings.extrahop.risk_levels)
        except ValueError as exc:
            raise ConfigError("extrahop.risk_levels", str(exc)) from None
        # ExtraHop detections, parsed with the configured risk → level bands (push and poll).
        self.extrahop_parser = functools.partial(parse_extrahop_detection, risk_levels=levels)
        self.extrahop_poller = (
            ExtraHopPoller(
                self.sync.extrahop_client,
                self.writer,
                self.extrahop_parser,
                interval=settings.extrahop.poll_seconds,
                lookback=settings.extrahop.poll_lookback_seconds,
                on_stored=lambda: self.folding.wake(),
            )
            if self.sync.extrahop_client is not None and settings.extrahop.poll_seconds > 0
            else None
        )
        # Wazuh's alerts.json, followed through rotations (tail_alerts_json; off by default).
        self.tailer = (
            AlertsTailer.from_settings(
                settings, self.writer, on_stored=lambda: self.folding.wake(batch=True)
            )
            if settings.tail_alerts_json is not None
            else None
        )
        # Accepted webhook events, also as JSON lines for a Wazuh agent's <localfile>.
        self.events_file = (
            JsonLinesWriter(settings.webhook_events_file) if settings.webhook_events_file else None
        )
        self.auto_enrich = AutoEnricher(
            self.engine, self.writer, self.enricher, settings.auto_enrich
        )
        self.playbooks = PlaybookEngine(
            self.engine,
            self.writer,
            self.library,
            secrets=secrets,
            variables=settings.vars,
            settings=settings,
            http_allow_networks=settings.http_allow_networks,
            workers=settings.playbook_workers,
            http_client=self.http,
            enricher=self.enricher,
            responses=self.responses,
        )
        # Missed acknowledge/resolve deadlines become timeline events (off: sla_check_seconds 0).
        self.sla_targets = SlaTargets.from_settings(settings)
        self.sla_watcher = SlaWatcher(
            self.engine, self.writer, self.sla_targets, poll_seconds=settings.sla_check_seconds
        )
        self.fold_hints = FoldHints()
        self.folder = Folder(
            self.rules,
            batch_size=settings.fold_batch_size,
            after_fold=self._after_fold,
            hints=self.fold_hints,
        )
        self.prefolder: Prefolder | None = None
        self.folding = FoldingWorker(self.writer, self.folder)
        # Work claimed from the store (alerts, runs, outbox effects) is shared by every worker
        # process; these loops must run in one process at a time, so each holds a lead.
        self.sla_watcher.leader = LeaderLock(self.engine, "sla-watcher")
        self.auto_enrich.leader = LeaderLock(self.engine, "auto-enrich")
        self.sync.reconcile_leader = LeaderLock(self.engine, "jira-reconcile")
        if self.extrahop_poller is not None:
            self.extrahop_poller.leader = LeaderLock(self.engine, "extrahop-poll")
        self.listener = (
            Listener(
                self.engine,
                {
                    ALERTS: self.folding.wake,
                    RUNS: self.playbooks.wake,
                    OUTBOX: self.sync.worker.wake,
                },
            )
            if self.engine.dialect.name == "postgresql"
            else None
        )
        self.presence: Presence | None = None
        self.role = "all"
        self.tokens = TokenVerifier(self.engine, settings.token_cache_seconds)
        # /metrics, and the plain listener when metrics_port is set.
        self.metrics = MetricsExporter(
            self.engine, host=settings.metrics_host, port=settings.metrics_port
        )
        self.checkpointer = (
            Checkpointer(self.engine, Path(self.engine.url.database), writer=self.writer)
            if settings.is_sqlite and self.engine.url.database not in (None, "", ":memory:")
            else None
        )
        self._started = False
        self._store_open = False

    def _after_fold(self, conn: Connection, folded: list[FoldedAlert]) -> int:
        queued = self.playbooks.enqueue(conn, folded)
        self.auto_enrich.wake()  # new observables may be waiting (it polls anyway)
        return queued

    def open_store(self) -> None:
        """Migrate the schema; raise ConfigError when the database cannot be reached."""
        if self._store_open:
            return
        try:
            migrate(self.engine)
            refresh_statistics(self.engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConfigError("database_url", f"cannot open the database: {reason}") from exc
        self._store_open = True

    def check_role(self, role: str) -> None:
        """Raise ConfigError unless this store can run a process of `role`."""
        if role not in ROLES:
            raise ConfigError("role", f"must be one of {', '.join(ROLES)}, not {role!r}")
        if role != "all" and self.engine.dialect.name != "postgresql":
            raise ConfigError(
                "role",
                f"{role!r} processes need PostgreSQL (--database-url): a SQLite store is "
                "written by one process, so run `casefold serve` alone",
            )

    def start(self, *, folding: bool = True, role: str = "all") -> None:
        """Start the writer and, with `folding`, the loops of `role` (see ROLES).

        `folding=False` starts the writer alone (commands and tests that drive loops by hand).
        """
        self.check_role(role)
        self.role = role
        self.open_store()
        self.metrics.start()  # first: a port in use stops start-up before anything runs
        self.writer.start()
        if self.checkpointer is not None:
            self.checkpointer.start()
        if folding:
            self.presence = Presence(self.writer, role)
            self.presence.start()
        if folding and role != "api":
            self.folding.start()
            self.playbooks.start()
            self.auto_enrich.start()
            self.sla_watcher.start()
            self.sync.start()
            if self.extrahop_poller is not None:
                self.extrahop_poller.start()
            if self.tailer is not None:
                if self._wants_fold_helper():
                    self.prefolder = Prefolder(self.rules, self.fold_hints)
                    self.tailer.submit_batch = self.prefolder
                self.tailer.after_store = self.folding.fold_stored
                self.tailer.start()
            self.library.start_watching()
            if self.listener is not None:
                self.listener.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            if self.listener is not None:
                self.listener.stop()
            if self.presence is not None:
                self.presence.stop()
            self.library.stop()
            self.auto_enrich.stop()
            self.sla_watcher.stop()
            self.sync.stop()
            if self.extrahop_poller is not None:
                self.extrahop_poller.stop()
            if self.tailer is not None:
                self.tailer.stop()
            if self.prefolder is not None:
                self.prefolder.close()
                self.prefolder = None
            self.folding.stop()
            self.playbooks.stop()
            self.writer.stop()
            if self.checkpointer is not None:
                self.checkpointer.stop()
            self._started = False
        if self.events_file is not None:
            self.events_file.close()
        self.metrics.stop()
        self.http.close()
        self.engine.dispose()

    def _wants_fold_helper(self) -> bool:
        # Hints are taken by this process's folding only: with PostgreSQL, other workers fold too.
        return (
            self.settings.tail_fold_helper
            and self.engine.dialect.name == "sqlite"
            and len(os.sched_getaffinity(0)) >= 2
        )

    def bootstrap_admin_token(self) -> Path | None:
        """On a store with no token, create an admin token; write it to <data-dir>/admin-token."""

        def job(conn: Connection) -> str | None:
            if has_any_token(conn):
                return None
            return create_token(conn, BOOTSTRAP_TOKEN_NAME, Role.ADMIN)

        token = self.writer.run(job)
        if token is None:
            return None
        path = self.settings.data_dir / "admin-token"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        os.chmod(path, 0o600)
        log.warning(
            "no API token existed: created admin token %r, written to %s (mode 0600)",
            BOOTSTRAP_TOKEN_NAME,
            path,
        )
        return path
