"""Running playbooks for stored alerts: runs are queued in the store, claimed, executed, recorded.

* Queued with the fold: `enqueue` runs inside the folding transaction, so an alert is folded and
  its runs queued atomically; a crash loses neither.
* Claimed from the store with a lease (`status='running'`, `lease_until`), never from memory: a
  crashed runner's runs are taken over when the lease expires, and several processes can share
  the queue (PostgreSQL: FOR UPDATE SKIP LOCKED).
* Executed in memory by `Runner`; case effects and step records are written together in one
  transaction per batch of runs, so a step recorded as done is never repeated and a case change
  is never applied without its record (or twice). A crash before that transaction loses only
  unrecorded work, which runs again when the lease expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import JSON, Engine, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from casefold import __version__
from casefold.actions.context import ActionContext
from casefold.actions.wazuh import WazuhSender, build_wazuh_sender
from casefold.cases import timeline
from casefold.cases.bulk import apply_ops
from casefold.cases.model import case_ref
from casefold.config import Settings
from casefold.connectors.netguard import URLGuard
from casefold.enrichment.providers import build_enricher
from casefold.enrichment.service import Enricher
from casefold.errors import NotFoundError
from casefold.expressions import ExpressionError
from casefold.folding.apply import FoldedAlert
from casefold.metrics import PLAYBOOK_RUN_SECONDS
from casefold.playbooks.library import PlaybookLibrary
from casefold.playbooks.model import Playbook
from casefold.playbooks.runner import WAITING, Runner, RunOutcome, StepRecord, redact
from casefold.sources.normalized import complete_view
from casefold.store.db import dialect_insert
from casefold.store.notify import RUNS, notify
from casefold.store.tables import (
    RUN_FAILED,
    RUN_QUEUED,
    RUN_RUNNING,
    alerts,
    playbook_runs,
)
from casefold.store.writer import Writer

log = logging.getLogger("casefold.playbooks")

ENV_CONTEXT = {"casefold": {"version": __version__}}


def trigger_context(
    raw: Any, normalized: Mapping[str, Any], case_id: int | None, opened: bool
) -> dict[str, Any]:
    """TRIGGER: `data` is the alert exactly as the source wrote it (the article's
    TRIGGER.data.rule.groups works unchanged), `alert` the normalised view, `case` its case."""
    case = {"id": case_id, "ref": case_ref(case_id), "opened_by_alert": opened} if case_id else None
    return {"data": raw, "alert": dict(normalized), "case": case}


RECENT_ALERTS = 5_000


@dataclass(frozen=True)
class _AlertDocs:
    raw: Any
    normalized: dict[str, Any]
    case_id: int | None


@dataclass
class _Claimed:
    run_id: int
    alert_id: int
    playbook: str
    records: dict[str, StepRecord] = field(default_factory=dict)
    alert: _AlertDocs | None = None
    opened: bool = False  # the alert opened its case
    started_at: datetime | None = None  # first claim: a run's duration counts from here
    lease_until: datetime | None = None  # this claim's lease: the run is ours while it holds


class PlaybookEngine:
    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        library: PlaybookLibrary,
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        variables: Mapping[str, Any] | None = None,
        settings: Any = None,
        http_allow_networks: Iterable[str] = (),
        workers: int = 2,
        batch: int = 200,
        runner: Runner | None = None,
        http_client: httpx.Client | None = None,
        enricher: Enricher | None = None,
        wazuh: WazuhSender | None = None,
        responses: Any = None,
    ) -> None:
        self.responses = responses  # response.service.ResponseService
        self.engine = engine
        self.writer = writer
        self.library = library
        self.secrets = {k: dict(v) for k, v in (secrets or {}).items()}
        self.variables = dict(variables or {})
        self.settings = settings
        self.guard = URLGuard(http_allow_networks)
        self.runner = runner or Runner()
        self.workers = workers
        self.batch = batch
        self.http = http_client or httpx.Client(timeout=30.0)
        conf = settings if isinstance(settings, Settings) else Settings()
        # A run claimed by a process that died is taken over when its lease ends.
        self.lease = timedelta(seconds=conf.playbook_lease_seconds)
        self.enricher = enricher or build_enricher(conf, self.secrets, self.http, engine, writer)
        self.wazuh = wazuh or build_wazuh_sender(conf, self.secrets, self.http)
        self._secret_values = [v for kv in self.secrets.values() for v in kv.values() if v]
        # The documents of alerts just folded, so that their runs need not read and decode them
        # again (a fresh process, or an evicted alert, reads them from the store).
        self._recent: OrderedDict[int, _AlertDocs] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- queueing (inside the folding transaction) -----------------------------------------

    def enqueue(self, conn: Connection, folded: list[FoldedAlert]) -> int:
        playbooks = self.library.all()
        if not playbooks or not folded:
            return 0
        now = datetime.now(UTC)
        rows = []
        for item in folded:
            ctx: dict[str, Any] | None = None
            for pb in playbooks:
                if not pb.trigger.matches_static(item.normalized):
                    continue
                if pb.trigger.condition is not None:
                    if ctx is None:
                        ctx = {
                            "TRIGGER": trigger_context(
                                item.raw, item.normalized, item.case_id, item.opened
                            ),
                            "VARS": self.variables,
                        }
                    try:
                        ok = _evaluate(pb.trigger.condition, ctx)
                    except ExpressionError as exc:
                        log.warning(
                            "playbook %s: trigger.if failed on alert %d: %s",
                            pb.name,
                            item.alert_id,
                            exc,
                        )
                        continue
                    if not ok:
                        continue
                rows.append(
                    {
                        "alert_id": item.alert_id,
                        "case_id": item.case_id,
                        "playbook": pb.name,
                        "version": pb.version,
                        "status": RUN_QUEUED,
                        "created_at": now,
                        "not_before": now,
                        "attempts": 0,
                        "steps": [],
                        "case_opened": item.opened,
                    }
                )
        if rows:
            with self._recent_lock:
                queued = {r["alert_id"] for r in rows}
                for item in folded:
                    if item.alert_id in queued:
                        self._recent[item.alert_id] = _AlertDocs(
                            item.raw, item.normalized, item.case_id
                        )
                while len(self._recent) > RECENT_ALERTS:
                    self._recent.popitem(last=False)
            conn.execute(
                dialect_insert(conn, playbook_runs).on_conflict_do_nothing(
                    index_elements=["alert_id", "playbook"]
                ),
                rows,
            )
            notify(conn, RUNS)  # workers in other processes
            self._wake.set()
        return len(rows)

    # -- the worker loop ---------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"casefold-runner-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.run_once()
            except Exception:  # keep the runner alive; leases make the runs come back
                log.exception("playbook runner failed; retrying")
                self._stop.wait(1.0)
                continue
            if done == 0:
                self._wake.wait(1.0)
                self._wake.clear()

    def drain(self, timeout: float = 60.0) -> int:
        """Run everything due now, and wait for runs other threads are executing (tests, replay)."""
        total = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.run_once()
            total += n
            if n:
                continue
            with self.engine.connect() as conn:
                busy = conn.execute(
                    select(func.count())
                    .select_from(playbook_runs)
                    .where(
                        or_(
                            playbook_runs.c.status == RUN_RUNNING,
                            and_(
                                playbook_runs.c.status == RUN_QUEUED,
                                playbook_runs.c.not_before <= datetime.now(UTC),
                            ),
                        )
                    )
                ).scalar_one()
            if not busy:
                return total
            time.sleep(0.02)
        raise TimeoutError("playbook runs still in progress")

    def run_once(self) -> int:
        """Claim, execute and record runs until none is due; returns how many ran.

        Pipelined: the next batch is claimed while this one executes, and a batch's record is
        written by the writer thread while the next batch executes here.
        """
        total = 0
        claim = self.writer.submit(lambda conn: self._claim(conn, self.batch), background=True)
        flushed = None
        while True:
            claimed = claim.result()
            if not claimed:
                break
            claim = self.writer.submit(lambda conn: self._claim(conn, self.batch), background=True)
            self._load(claimed)
            outcomes = [self._execute(run) for run in claimed]
            if flushed is not None:
                flushed.result()  # surface a failed write before queueing more
            flushed = self.writer.submit(
                lambda conn, done=outcomes: self._flush(conn, done), background=True
            )
            total += len(claimed)
        if flushed is not None:
            flushed.result()
        return total

    # -- claim, load, execute, flush -------------------------------------------------------------

    def _claim(self, conn: Connection, limit: int) -> list[_Claimed]:
        now = datetime.now(UTC)
        # Two index-friendly queries rather than one OR: due queued runs first, then runs whose
        # runner died (lease expired), which are rare.
        queries = [
            select(playbook_runs.c.id)
            .where(playbook_runs.c.status == RUN_QUEUED, playbook_runs.c.not_before <= now)
            .order_by(playbook_runs.c.not_before, playbook_runs.c.id),
            select(playbook_runs.c.id)
            .where(playbook_runs.c.status == RUN_RUNNING, playbook_runs.c.lease_until < now)
            .order_by(playbook_runs.c.id),
        ]
        ids: list[int] = []
        for pick in queries:
            pick = pick.limit(limit - len(ids))
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            ids += [r.id for r in conn.execute(pick)]
            if len(ids) >= limit:
                break
        if not ids:
            return []
        conn.execute(
            update(playbook_runs)
            .where(playbook_runs.c.id.in_(ids))
            .values(
                status=RUN_RUNNING,
                lease_until=now + self.lease,
                attempts=playbook_runs.c.attempts + 1,
                started_at=func.coalesce(playbook_runs.c.started_at, now),
            )
        )
        rows = conn.execute(
            select(
                playbook_runs.c.id,
                playbook_runs.c.alert_id,
                playbook_runs.c.playbook,
                playbook_runs.c.case_opened,
                playbook_runs.c.steps,
                playbook_runs.c.started_at,
            )
            .where(playbook_runs.c.id.in_(ids))
            .order_by(playbook_runs.c.id)
        )
        return [
            _Claimed(
                r.id,
                r.alert_id,
                r.playbook,
                opened=bool(r.case_opened),
                records={d["ref"]: _record_from(d) for d in (r.steps or [])},
                started_at=r.started_at,
                lease_until=now + self.lease,
            )
            for r in rows
        ]

    def _load(self, claimed: list[_Claimed]) -> None:
        with self._recent_lock:
            for run in claimed:
                run.alert = self._recent.get(run.alert_id)
        missing = [run.alert_id for run in claimed if run.alert is None]
        if not missing:
            return
        found: dict[int, _AlertDocs] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(
                select(
                    alerts.c.id,
                    alerts.c.source,
                    alerts.c.raw,
                    alerts.c.normalized,
                    alerts.c.case_id,
                ).where(alerts.c.id.in_(missing))
            ):
                raw = orjson.loads(r.raw)
                norm = orjson.loads(r.normalized) if isinstance(r.normalized, str) else r.normalized
                found[r.id] = _AlertDocs(raw, complete_view(r.source, norm, raw), r.case_id)
        for run in claimed:
            if run.alert is None:
                run.alert = found.get(run.alert_id)

    def context_for(
        self, raw: Any, normalized: Mapping[str, Any], case_id: int | None, opened: bool
    ) -> dict[str, Any]:
        return {
            "TRIGGER": trigger_context(raw, normalized, case_id, opened),
            "SECRETS": self.secrets,
            "VARS": self.variables,
            "ENV": ENV_CONTEXT,
            "var": {},
        }

    def _execute(
        self, run: _Claimed
    ) -> tuple[_Claimed, RunOutcome | None, str | None, ActionContext | None]:
        row = run.alert
        pb = self.library.get(run.playbook)
        if row is None:
            return run, None, "the alert no longer exists", None
        if pb is None:
            return run, None, f"playbook {run.playbook!r} is no longer loaded", None
        actx = self.action_context(pb, run.run_id, run.alert_id, row.case_id, run.opened)
        actx.alert = row.normalized
        ctx = self.context_for(row.raw, row.normalized, row.case_id, run.opened)
        order = [step.ref for step in pb.steps]

        def checkpoint(records: dict[str, StepRecord]) -> None:
            # A step just reached another system: record it (and the case changes made so far)
            # in its own transaction now, so that a crash never makes the call again.
            progress = RunOutcome(RUN_RUNNING, dict(records))
            doc = _steps_doc(order, progress, self._secret_values)
            effects, ops = list(actx.effects), list(actx.case_ops)
            actx.effects.clear()
            actx.case_ops.clear()

            def job(conn: Connection) -> None:
                for _desc, effect in effects:
                    effect(conn)
                apply_ops(conn, ops, datetime.now(UTC))
                conn.execute(
                    update(playbook_runs).where(playbook_runs.c.id == run.run_id).values(steps=doc)
                )

            self.writer.run(job, timeout=None)

        # Secrets are masked once per run when the steps are recorded (_steps_doc), not per step.
        outcome = self.runner.execute(pb, ctx, run.records, actx, checkpoint=checkpoint)
        return run, outcome, None, actx

    def action_context(
        self,
        pb: Playbook,
        run_id: int | None,
        alert_id: int | None,
        case_id: int | None,
        opened: bool,
        *,
        dry_run: bool = False,
        live: bool = False,
    ) -> ActionContext:
        return ActionContext(
            playbook=pb.name,
            run_id=run_id,
            alert_id=alert_id,
            case_id=case_id,
            case_opened_by_alert=opened,
            engine=self.engine,
            run_now=None if dry_run else (lambda job: self.writer.run(job, timeout=None)),
            secrets=self.secrets,
            http_client=self.http,
            http_allow=self.guard.check,
            dry_run=dry_run,
            live=live,
            settings=self.settings,
            enricher=self.enricher,
            wazuh=self.wazuh,
            responses=self.responses,
        )

    def _still_ours(
        self,
        conn: Connection,
        outcomes: list[tuple[_Claimed, RunOutcome | None, str | None, ActionContext | None]],
    ) -> list[tuple[_Claimed, RunOutcome | None, str | None, ActionContext | None]]:
        """The outcomes of runs still leased to this claim. A run whose lease ran out while it
        executed may have been claimed and recorded by another worker: recording it here too
        would apply its case changes twice, so its outcome is dropped."""
        if not outcomes:
            return outcomes
        col = playbook_runs.c
        stmt = select(col.id, col.lease_until).where(
            col.id.in_([run.run_id for run, *_ in outcomes]), col.status == RUN_RUNNING
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()  # why: no other claim may take them before we record
        leases = {row.id: _utc(row.lease_until) for row in conn.execute(stmt)}
        kept = [o for o in outcomes if leases.get(o[0].run_id) == o[0].lease_until]
        if len(kept) < len(outcomes):
            log.warning(
                "%d playbook run(s) outlived their lease and were taken over; their results "
                "here are dropped (raise playbook_lease_seconds above the slowest run)",
                len(outcomes) - len(kept),
            )
        return kept

    def _flush(
        self,
        conn: Connection,
        outcomes: list[tuple[_Claimed, RunOutcome | None, str | None, ActionContext | None]],
    ) -> None:
        """Record a batch of runs: case changes, steps, run states and timeline, in bulk."""
        now = datetime.now(UTC)
        outcomes = self._still_ours(conn, outcomes)
        errors: dict[int, str] = {}
        live = [
            (run, outcome, actx)
            for run, outcome, _p, actx in outcomes
            if outcome is not None and actx is not None
        ]
        # Case changes of all runs together; if the store refuses them (a case was deleted),
        # apply run by run so that only the offending run fails.
        try:
            with conn.begin_nested():
                self._apply_changes(conn, [actx for _r, _o, actx in live], now)
        except Exception:
            for run, outcome, actx in live:
                try:
                    with conn.begin_nested():
                        self._apply_changes(conn, [actx], now)
                except Exception as exc:  # a case change the store refused: fail visibly
                    outcome.status = RUN_FAILED
                    errors[run.run_id] = f"applying case changes failed: {exc}"
        run_rows = []
        events = []
        for run, outcome, problem, actx in outcomes:
            if outcome is None or actx is None:
                run_rows.append(_run_row(run.run_id, RUN_FAILED, problem, now, None, None, None))
                _observe(run, RUN_FAILED, now)
                continue
            if outcome.status == WAITING:
                run_rows.append(
                    _run_row(
                        run.run_id,
                        RUN_QUEUED,
                        None,
                        None,
                        actx.case_id,
                        outcome.not_before,
                        _steps_doc(self._step_order(run.playbook), outcome, self._secret_values),
                    )
                )
                continue
            error = redact(errors.get(run.run_id, outcome.error), self._secret_values)
            _observe(run, outcome.status, now)
            run_rows.append(
                _run_row(
                    run.run_id,
                    outcome.status,
                    error,
                    now,
                    actx.case_id,
                    None,
                    _steps_doc(self._step_order(run.playbook), outcome, self._secret_values),
                )
            )
            if actx.case_id:
                counts = outcome.counts
                summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                events.append(
                    timeline.event_row(
                        actx.case_id,
                        "playbook_run",
                        actor=f"playbook:{run.playbook}",
                        detail={
                            "run_id": run.run_id,
                            "alert_id": run.alert_id,
                            "status": outcome.status,
                            "steps": counts,
                            "reason": f"playbook {run.playbook} run {run.run_id} "
                            f"{outcome.status} ({summary})" + (f": {error}" if error else ""),
                        },
                        at=now,
                    )
                )
        if run_rows:
            conn.execute(
                update(playbook_runs)
                .where(playbook_runs.c.id == bindparam("r_id"))
                .values(
                    status=bindparam("r_status"),
                    error=bindparam("r_error"),
                    finished_at=bindparam("r_finished"),
                    lease_until=None,
                    case_id=func.coalesce(bindparam("r_case"), playbook_runs.c.case_id),
                    not_before=func.coalesce(bindparam("r_not_before"), playbook_runs.c.not_before),
                    steps=func.coalesce(bindparam("r_steps", type_=JSON), playbook_runs.c.steps),
                ),
                run_rows,
            )
        timeline.record(conn, events)

    def _step_order(self, playbook: str) -> list[str]:
        pb = self.library.get(playbook)
        return [step.ref for step in pb.steps] if pb else []

    @staticmethod
    def _apply_changes(conn: Connection, contexts: list[ActionContext], now: datetime) -> None:
        for actx in contexts:
            for _desc, effect in actx.effects:
                effect(conn)
        apply_ops(conn, [op for actx in contexts for op in actx.case_ops], now)

    # -- retry -----------------------------------------------------------------------------------

    def retry(self, run_id: int) -> None:
        """Queue a finished run again; its failed and skipped steps run again, done ones don't."""

        def job(conn: Connection) -> None:
            row = conn.execute(
                select(playbook_runs.c.status, playbook_runs.c.steps).where(
                    playbook_runs.c.id == run_id
                )
            ).first()
            if row is None:
                raise NotFoundError(f"run {run_id} does not exist")
            kept = [d for d in (row.steps or []) if d.get("status") == "succeeded"]
            conn.execute(
                update(playbook_runs)
                .where(playbook_runs.c.id == run_id)
                .values(
                    status=RUN_QUEUED,
                    not_before=datetime.now(UTC),
                    steps=kept,
                    error=None,
                    finished_at=None,
                    lease_until=None,
                )
            )

        self.writer.run(job)
        self.wake()


def _evaluate(expr: Any, context: Mapping[str, Any]) -> Any:
    if hasattr(expr, "evaluate"):
        return expr.evaluate(context)
    return expr.render(context)


def _observe(run: _Claimed, status: str, finished: datetime) -> None:
    """A finished run's duration, for /metrics. Counted when recorded: a batch whose record fails
    runs again and is counted again, which is rare enough not to matter."""
    if run.started_at is not None:
        started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
        seconds = max(0.0, (finished - started).total_seconds())
        PLAYBOOK_RUN_SECONDS.labels(run.playbook, status).observe(seconds)


def _run_row(
    run_id: int,
    status: str,
    error: str | None,
    finished: datetime | None,
    case_id: int | None,
    not_before: datetime | None,
    steps: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    return {
        "r_id": run_id,
        "r_status": status,
        "r_error": error,
        "r_finished": finished,
        "r_case": case_id,
        "r_not_before": not_before,
        "r_steps": steps,
    }


def _steps_doc(order: list[str], outcome: RunOutcome, secrets: list[str]) -> list[dict[str, Any]]:
    """Every step's record, in playbook order (steps not reached yet are absent), with every
    occurrence of a secret masked."""
    refs = [r for r in order if r in outcome.records] + [
        r for r in outcome.records if r not in order
    ]
    doc = []
    for ref in refs:
        rec = outcome.records[ref]
        doc.append(
            {
                "ref": rec.ref,
                "action": rec.action,
                "status": rec.status,
                "attempts": rec.attempts,
                "started_at": rec.started_at.isoformat() if rec.started_at else None,
                "duration_ms": rec.duration_ms,
                "input": rec.input,
                "result": rec.result,
                "error": rec.error,
                "reason": rec.reason,
                "due": rec.due.isoformat() if rec.due else None,
            }
        )
    return redact(doc, secrets)


def _record_from(d: Mapping[str, Any]) -> StepRecord:
    def when(v: Any) -> datetime | None:
        return datetime.fromisoformat(v) if isinstance(v, str) else None

    return StepRecord(
        ref=d["ref"],
        action=d["action"],
        status=d["status"],
        attempts=d.get("attempts", 0),
        started_at=when(d.get("started_at")),
        duration_ms=d.get("duration_ms"),
        input=d.get("input"),
        result=d.get("result"),
        error=d.get("error"),
        reason=d.get("reason"),
        due=when(d.get("due")),
    )


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
