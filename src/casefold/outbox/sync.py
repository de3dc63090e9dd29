"""Wiring the outbox for a process: which targets are configured, their planners (what a case
change causes) and handlers (how an effect is delivered), the delivery worker and Jira's
periodic reconcile."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

from casefold.cases.timeline import CHANGE_HOOK
from casefold.config import Settings
from casefold.connectors.extrahop import ExtraHop
from casefold.connectors.http import ProviderHTTP, RetryPolicy
from casefold.connectors.jira import Jira, basic_auth, bearer_auth
from casefold.connectors.netguard import URLGuard
from casefold.outbox import store
from casefold.outbox.extrahop_sync import ExtraHopPlanner, ExtraHopSync
from casefold.outbox.jira_sync import JiraPlanner, JiraSync
from casefold.outbox.webhooks import WebhookDelivery
from casefold.outbox.worker import DeliveryWorker, Handler
from casefold.store.leader import LeaderLock
from casefold.store.writer import Writer

log = logging.getLogger("casefold.outbox")

JIRA_SECRET = "jira"


def jira_auth(secrets: Mapping[str, Mapping[str, str]]) -> str | None:
    creds = secrets.get(JIRA_SECRET, {})
    if creds.get("PAT"):
        return bearer_auth(creds["PAT"])
    if creds.get("EMAIL") and creds.get("API_TOKEN"):
        return basic_auth(creds["EMAIL"], creds["API_TOKEN"])
    return None


class Sync:
    def __init__(
        self,
        settings: Settings,
        secrets: Mapping[str, Mapping[str, str]],
        client: httpx.Client,
        engine: Engine,
        writer: Writer,
        *,
        extra_handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.planners: list[Any] = []
        handlers: dict[str, Handler] = dict(extra_handlers or {})
        guard = URLGuard(settings.http_allow_networks)
        handlers["webhook.post"] = WebhookDelivery(
            ProviderHTTP("webhook", client, RetryPolicy(attempts=1, timeout=15.0)),
            guard.check,
            secrets,
        )
        self.jira: JiraSync | None = None
        self.missing: dict[str, str] = {}
        conf = settings.jira
        if conf.url:
            auth = jira_auth(secrets)
            if auth is None or not conf.project:
                self.missing["jira"] = (
                    "jira.project is not set"
                    if auth
                    else "secret jira.EMAIL + jira.API_TOKEN (or jira.PAT) is not configured"
                )
            else:
                # One attempt per delivery: the outbox retries, with the idempotency checks
                # that a blind HTTP retry of a POST would skip.
                http = ProviderHTTP("jira", client, RetryPolicy(attempts=1, timeout=conf.timeout))
                jira = Jira(http, conf.url, api_version=conf.api_version, auth=auth)
                self.jira = JiraSync(conf, jira, engine)
                self.planners.append(JiraPlanner(conf))
                handlers.update(self.jira.handlers())
        self.extrahop: ExtraHopSync | None = None
        self.extrahop_client: ExtraHop | None = None  # also used by the detection poller
        eh = settings.extrahop
        if eh.url:
            creds = secrets.get("extrahop", {})
            if creds.get("API_KEY") or (creds.get("CLIENT_ID") and creds.get("CLIENT_SECRET")):
                http = ProviderHTTP("extrahop", client, RetryPolicy(attempts=1, timeout=eh.timeout))
                self.extrahop_client = ExtraHop(
                    http,
                    eh.url,
                    api_key=creds.get("API_KEY"),
                    client_id=creds.get("CLIENT_ID"),
                    client_secret=creds.get("CLIENT_SECRET"),
                )
                if eh.update_detections:
                    self.extrahop = ExtraHopSync(self.extrahop_client, engine)
                    self.planners.append(ExtraHopPlanner(eh.max_attempts))
                    handlers.update(self.extrahop.handlers())
            else:
                self.missing["extrahop"] = (
                    "secret extrahop.API_KEY (or CLIENT_ID and CLIENT_SECRET) is not configured"
                )
        self.webhook_secret = secrets.get(JIRA_SECRET, {}).get("WEBHOOK_SECRET")
        self.worker = DeliveryWorker(
            engine,
            writer,
            handlers,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
            retry_base=settings.outbox_retry_seconds,
        )
        self.reconcile_seconds = conf.reconcile_seconds
        self._stop = threading.Event()
        self._reconciler: threading.Thread | None = None
        self.reconcile_leader: LeaderLock | None = None  # one reconciler across processes
        for name, why in self.missing.items():
            log.warning("%s sync is off: %s", name, why)
        if self.planners:
            event.listen(engine, "engine_connect", self._attach)

    def _attach(self, conn: Connection) -> None:
        conn.info[CHANGE_HOOK] = self.plan

    def plan(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        effects = [e for planner in self.planners for e in planner.plan(conn, rows)]
        if effects:
            store.enqueue(conn, effects)
            self.worker.wake()

    def start(self) -> None:
        self.worker.start()
        if self.jira is not None and self.reconcile_seconds > 0:
            self._stop.clear()
            self._reconciler = threading.Thread(
                target=self._reconcile_loop, name="casefold-jira-reconcile", daemon=True
            )
            self._reconciler.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reconciler is not None:
            self._reconciler.join(30)
            self._reconciler = None
        if self.reconcile_leader is not None:
            self.reconcile_leader.release()
        self.worker.stop()

    def reconcile(self) -> int:
        if self.jira is None:
            return 0

        return self.jira.reconcile(lambda job: self.writer.run(job, timeout=None))

    def _reconcile_loop(self) -> None:
        while not self._stop.wait(self.reconcile_seconds):
            if self.reconcile_leader is not None and not self.reconcile_leader.hold():
                continue  # another process reconciles
            try:
                fixed = self.reconcile()
                if fixed:
                    log.info("jira reconcile: %d case(s) brought up to date", fixed)
            except Exception as exc:  # Jira down: the next round tries again
                log.warning("jira reconcile failed: %s", exc)
