"""Automatic enrichment: every public observable of an open case, looked up with the providers
named in `auto_enrich`, without any playbook.

A background thread takes observables not yet enriched (oldest first, only of cases that are not
resolved or closed, so turning the setting on does not spend the quotas on last year's cases),
asks each enabled provider that handles its kind, and records per observable: each provider's
verdict, score, summary and provenance (`verdicts`), the worst verdict (`verdict`), and one
timeline entry on the case. Lookups go through the shared Enricher: cached, within budget, one
call per value however many alerts carry it.

A provider that fails (down, bad key) is recorded as such on the observable, which counts as
enriched; `POST /api/v1/cases/{id}/enrich` asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from casefold.background import PassLoop
from casefold.cases import timeline
from casefold.connectors.finding import KINDS, worst
from casefold.connectors.http import ProviderError
from casefold.enrichment.service import Enricher, Outcome
from casefold.errors import CasefoldError
from casefold.store.tables import case_observables, cases
from casefold.store.writer import Writer

log = logging.getLogger("casefold.enrichment")

CLOSED_STATUSES = ("resolved", "closed")
ACTOR = "casefold:enrichment"


def pending_query(after_id: int, limit: int) -> Any:
    return (
        select(
            case_observables.c.id,
            case_observables.c.case_id,
            case_observables.c.type,
            case_observables.c.value,
        )
        .join(cases, cases.c.id == case_observables.c.case_id)
        .where(
            case_observables.c.id > after_id,
            case_observables.c.enriched_at.is_(None),
            case_observables.c.type.in_(KINDS),
            or_(case_observables.c.public.is_(None), case_observables.c.public.is_(True)),
            cases.c.status.not_in(CLOSED_STATUSES),
        )
        .order_by(case_observables.c.id)
        .limit(limit)
    )


def verdict_entry(outcome: Outcome) -> dict[str, Any]:
    f = outcome.finding
    entry: dict[str, Any] = {
        "verdict": outcome.verdict,
        "found": bool(f and f.found),
        "score": f.score if f else None,
        "summary": f.summary if f else f"skipped: {outcome.skipped}",
        **outcome.provenance,
    }
    if outcome.skipped:
        entry["skipped"] = outcome.skipped
    return entry


class AutoEnricher(PassLoop):
    thread_name = "casefold-enrich"
    failure_message = "automatic enrichment failed; trying again shortly"

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        enricher: Enricher,
        providers: Sequence[str],
        *,
        batch: int = 50,
        threads: int = 4,
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(poll_seconds)
        self.engine = engine
        self.writer = writer
        self.enricher = enricher
        self.providers = [p for p in providers if enricher.configured(p)]
        self.batch = batch
        self.threads = threads
        self.enriched = 0
        self._cursor = 0
        self._pool: ThreadPoolExecutor | None = None
        for name in providers:
            if name not in self.providers:
                why = enricher.missing.get(name, "unknown provider")
                log.warning("auto_enrich: %s is left out: %s", name, why)

    def enabled(self) -> bool:
        return bool(self.providers)

    def start(self) -> None:
        if self.enabled() and self._pool is None:
            # lookups of one batch run side by side; the Enricher makes one call per value
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="casefold-enrich")
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def rewind(self) -> None:
        """Look at every pending observable again (after observables were marked for re-enrich)."""
        self._cursor = 0
        self._wake.set()

    def work(self) -> int:
        """Enrich one batch of pending observables; return how many were recorded."""
        return self._pass_once(self._pool)

    def _pass_once(self, pool: ThreadPoolExecutor | None) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(pending_query(self._cursor, self.batch)).all()
        if not rows:
            return 0
        mapper = pool.map if pool is not None else map
        results = list(mapper(self._enrich_one, rows))
        now = datetime.now(UTC)
        self.writer.run(
            lambda conn: self._record(conn, rows, results, now), timeout=None, background=True
        )
        self._cursor = rows[-1].id
        self.enriched += len(rows)
        return len(rows)

    def _enrich_one(self, row: Any) -> dict[str, dict[str, Any]]:
        verdicts: dict[str, dict[str, Any]] = {}
        for provider in self.providers:
            if not self.enricher.supports(provider, row.type):
                continue
            try:
                outcome = self.enricher.lookup(provider, row.type, row.value)
            except ProviderError as exc:
                verdicts[provider] = {"verdict": "unknown", "error": str(exc)}
                continue
            except CasefoldError as exc:  # a value the provider cannot take
                verdicts[provider] = {"verdict": "unknown", "error": str(exc)}
                continue
            if outcome.skipped in ("private address", "empty-file hash"):
                continue
            verdicts[provider] = verdict_entry(outcome)
        return verdicts

    @staticmethod
    def _record(
        conn: Connection,
        rows: Sequence[Any],
        results: list[dict[str, dict[str, Any]]],
        now: datetime,
    ) -> None:
        params = []
        events = []
        for row, verdicts in zip(rows, results, strict=True):
            answered = [v["verdict"] for v in verdicts.values() if v.get("found")]
            overall = worst(answered) if answered else "unknown"
            params.append(
                {"o_id": row.id, "o_verdicts": verdicts, "o_verdict": overall, "o_at": now}
            )
            if verdicts:
                events.append(
                    timeline.event_row(
                        row.case_id,
                        "observable_enriched",
                        actor=ACTOR,
                        field=f"{row.type}:{row.value}",
                        new=overall,
                        detail={
                            name: {
                                k: v.get(k)
                                for k in ("verdict", "score", "summary", "error")
                                if v.get(k) is not None
                            }
                            for name, v in verdicts.items()
                        },
                        at=now,
                    )
                )
        conn.execute(
            update(case_observables)
            .where(and_(case_observables.c.id == bindparam("o_id")))
            .values(
                verdicts=bindparam("o_verdicts"),
                verdict=bindparam("o_verdict"),
                enriched_at=bindparam("o_at"),
            ),
            params,
        )
        timeline.record(conn, events)


def mark_for_enrichment(conn: Connection, case_id: int) -> int:
    """Have every observable of a case looked up again; returns how many."""
    result = conn.execute(
        update(case_observables)
        .where(case_observables.c.case_id == case_id)
        .values(enriched_at=None)
    )
    return int(result.rowcount or 0)
