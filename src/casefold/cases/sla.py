"""Service levels: how long a case may wait to be acknowledged and to be resolved.

Targets are seconds from the case's creation, per severity (`sla` in the settings); a severity
without a target has no deadline. A case is *acknowledged* the first time its status leaves
new/unknown or it gets an assignee, and *resolved* when its status becomes resolved or closed
(`cases.bulk` keeps `acknowledged_at` and `resolved_at` in the same transaction as the change).
Deadlines follow the case's current severity: raising it can bring a deadline forward.

The `SlaWatcher` looks for missed deadlines every `sla_check_seconds`: an open case past its
acknowledge deadline and still unacknowledged, or past its resolve deadline and still unresolved,
gets its breach time (the deadline) stored and one `sla_breached` timeline event, once. A case
acknowledged or resolved after its deadline but before the watcher's next pass is caught on that
pass, so a breach is never missed for falling between two passes. Reopening a case clears its
resolve breach, so the resolve deadline (still counted from creation) can be breached again.

`sla_badge` is what the analyst UI shows next to an open case; `sla_stats` is the dashboard's
per-severity table (counts, mean times to acknowledge and to resolve, breaches).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, func, select, text, update
from sqlalchemy.engine import Connection

from casefold.background import PassLoop
from casefold.cases import timeline
from casefold.cases.model import DONE, SEVERITIES, severity_rank
from casefold.store.tables import SLA_ACK_WAITING, SLA_RESOLVE_WAITING, cases
from casefold.store.writer import Writer

if TYPE_CHECKING:
    from casefold.config import Settings

log = logging.getLogger("casefold.sla")

ACKNOWLEDGE = "acknowledge"
RESOLVE = "resolve"
KINDS = (ACKNOWLEDGE, RESOLVE)
BREACH_EVENT = "sla_breached"
DUE_SOON_SHARE = 0.25  # "due soon" once less than a quarter of the target is left
# Acknowledgements and resolutions this far before the watcher's previous pass are checked again
# for a missed deadline: covers a change whose transaction committed after that pass had read.
LATE_SLACK = timedelta(seconds=60)
FIRST_LOOKBACK = timedelta(hours=1)  # after a start, how far back late ones are looked for

_SHORT = {ACKNOWLEDGE: "ack", RESOLVE: "resolve"}
_BREACH_COLUMN = {ACKNOWLEDGE: "sla_ack_breached_at", RESOLVE: "sla_resolve_breached_at"}
_DONE_COLUMN = {ACKNOWLEDGE: "acknowledged_at", RESOLVE: "resolved_at"}


class SlaTargets:
    """Seconds to acknowledge and to resolve, per severity; None where there is no target."""

    def __init__(self, acknowledge: Mapping[str, float], resolve: Mapping[str, float]) -> None:
        self._targets = {
            ACKNOWLEDGE: {k: float(v) for k, v in acknowledge.items()},
            RESOLVE: {k: float(v) for k, v in resolve.items()},
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> SlaTargets:
        return cls(settings.sla.acknowledge, settings.sla.resolve)

    def acknowledge_seconds(self, severity: str) -> float | None:
        return self._targets[ACKNOWLEDGE].get(severity)

    def resolve_seconds(self, severity: str) -> float | None:
        return self._targets[RESOLVE].get(severity)

    def seconds(self, kind: str, severity: str) -> float | None:
        return self._targets[kind].get(severity)

    def of_kind(self, kind: str) -> dict[str, float]:
        """Severity → seconds for `acknowledge` or `resolve`."""
        return dict(self._targets[kind])

    def __bool__(self) -> bool:
        return any(self._targets.values())

    def __repr__(self) -> str:
        ack, res = self._targets[ACKNOWLEDGE], self._targets[RESOLVE]
        return f"SlaTargets(acknowledge={ack}, resolve={res})"


@dataclass(frozen=True)
class SlaBadge:
    kind: str  # "acknowledge" | "resolve"
    state: str  # "ok" | "due_soon" | "breached"
    due_at: datetime
    text: str  # short, e.g. "ack in 12 min", "ack overdue 3 h", "resolve in 2 d"


def _as_utc(value: Any) -> datetime | None:
    """A stored or serialised time as an aware UTC datetime (SQLite gives naive UTC)."""
    if value is None:
        return None
    if isinstance(value, str):  # a case dict that went through JSON
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def short_duration(seconds: float) -> str:
    """A short, rounded-down duration: "<1 min", "12 min" (under 2 h), "5 h" (under 2 d), "3 d"."""
    seconds = abs(seconds)
    if seconds < 60:
        return "<1 min"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def sla_badge(case: Mapping[str, Any], targets: SlaTargets, now: datetime) -> SlaBadge | None:
    """The deadline an open case is working towards, as the UI shows it; None when there is none.

    `case` is a case dict (`queries.case_dict`). An unacknowledged case shows its acknowledge
    deadline (or, when its severity has no acknowledge target, its resolve deadline); an
    acknowledged one its resolve deadline. Resolved and closed cases have none.
    """
    if case["status"] in DONE or case.get("resolved_at") is not None:
        return None
    created, now = _as_utc(case["created_at"]), _as_utc(now) or now
    if created is None:
        return None
    kinds = [RESOLVE] if case.get("acknowledged_at") is not None else [ACKNOWLEDGE, RESOLVE]
    for kind in kinds:
        target = targets.seconds(kind, case["severity"])
        if target is None:
            continue
        due = created + timedelta(seconds=target)
        left = (due - now).total_seconds()
        name = _SHORT[kind]
        if left <= 0:
            return SlaBadge(kind, "breached", due, f"{name} overdue {short_duration(left)}")
        state = "due_soon" if left < target * DUE_SOON_SHARE else "ok"
        return SlaBadge(kind, state, due, f"{name} in {short_duration(left)}")
    return None


# -- statistics ------------------------------------------------------------------------------


@dataclass
class SeverityStats:
    severity: str
    cases: int
    acknowledged: int
    resolved: int
    mtta_seconds: float | None  # mean time from creation to acknowledgement
    mttr_seconds: float | None  # mean time from creation to resolution
    ack_breaches: int
    resolve_breaches: int


def seconds_between(conn: Connection, start: Any, end: Any) -> Any:
    """SQL for the seconds from `start` to `end` (NULL when either is NULL)."""
    if conn.dialect.name == "sqlite":
        # Stored as ISO text in UTC; julianday parses it (a double: sub-millisecond precision).
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def mean_seconds_between(conn: Connection, start: Any, end: Any) -> Any:
    """SQL for the mean seconds from `start` to `end` over a group's rows where both are set."""
    if conn.dialect.name == "sqlite":
        # Scaled once per group, not per row: most of this query's time is per-row arithmetic.
        return func.avg(func.julianday(end) - func.julianday(start)) * 86400.0
    return func.avg(func.extract("epoch", end - start))


def sla_stats(conn: Connection, since: datetime) -> list[SeverityStats]:
    """Per severity, over the cases created at or after `since`: how many, how many acknowledged
    and resolved, mean seconds to each, and breaches. One entry per severity that has cases,
    highest severity first.

    One aggregate query per severity, each a range of `ix_cases_sla_stats` read from the index
    alone: cheaper than grouping, which sorts every case of the window (on SQLite, most of the
    time for 100,000 cases).
    """
    c = cases.c
    stmt = select(
        func.count(),
        func.count(c.acknowledged_at),
        func.count(c.resolved_at),
        mean_seconds_between(conn, c.created_at, c.acknowledged_at),
        mean_seconds_between(conn, c.created_at, c.resolved_at),
        func.count(c.sla_ack_breached_at),
        func.count(c.sla_resolve_breached_at),
    ).where(c.severity == bindparam("severity"), c.created_at >= since)
    out = []
    for severity in sorted(SEVERITIES, key=severity_rank, reverse=True):
        r = conn.execute(stmt, {"severity": severity}).one()
        if not r[0]:
            continue
        out.append(
            SeverityStats(
                severity=severity,
                cases=int(r[0]),
                acknowledged=int(r[1]),
                resolved=int(r[2]),
                mtta_seconds=None if r[3] is None else float(r[3]),
                mttr_seconds=None if r[4] is None else float(r[4]),
                ack_breaches=int(r[5]),
                resolve_breaches=int(r[6]),
            )
        )
    return out


# -- breaches --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    case_id: int
    kind: str
    severity: str
    due_at: datetime
    target_seconds: float


def breaches_of(row: Mapping[str, Any], targets: SlaTargets, now: datetime) -> list[Breach]:
    """The deadlines this case row has missed and that are not recorded yet."""
    found: list[Breach] = []
    created = _as_utc(row["created_at"])
    if created is None:  # not nullable; nothing to measure from
        return found
    for kind in KINDS:
        target = targets.seconds(kind, row["severity"])
        if target is None or row[_BREACH_COLUMN[kind]] is not None:
            continue
        due = created + timedelta(seconds=target)
        if due >= now:
            continue
        done = _as_utc(row[_DONE_COLUMN[kind]])
        if done is None:
            if kind == RESOLVE and row["status"] in DONE:
                continue  # not expected (resolved_at is set with the status); never breach it
            found.append(Breach(row["id"], kind, row["severity"], due, target))
        elif done > due:  # done, but late, and no pass saw it in time
            found.append(Breach(row["id"], kind, row["severity"], due, target))
    return found


def candidate_ids(
    conn: Connection,
    targets: SlaTargets,
    now: datetime,
    limit: int,
    *,
    late_since: datetime | None = None,
) -> list[int]:
    """Cases that may have missed a deadline, oldest first per severity, at most `limit`.

    Waiting cases come off the partial indexes (their predicates are repeated verbatim so the
    planner can use them); with `late_since`, cases acknowledged or resolved since then after
    their deadline are added.
    """
    ids: dict[int, None] = {}
    waiting = {ACKNOWLEDGE: SLA_ACK_WAITING, RESOLVE: SLA_RESOLVE_WAITING}
    for kind in KINDS:
        for severity, target in targets.of_kind(kind).items():
            if len(ids) >= limit:
                return list(ids)
            cut = now - timedelta(seconds=target)
            conds = [cases.c.severity == severity, text(waiting[kind]), cases.c.created_at < cut]
            if kind == RESOLVE:
                conds.append(cases.c.status.not_in(sorted(DONE)))
            stmt = (
                select(cases.c.id)
                .where(*conds)
                .order_by(cases.c.created_at, cases.c.id)
                .limit(limit - len(ids))
            )
            ids.update((r.id, None) for r in conn.execute(stmt))
            if late_since is None or len(ids) >= limit:
                continue
            done = cases.c[_DONE_COLUMN[kind]]
            stmt = (
                select(cases.c.id)
                .where(
                    done >= late_since,
                    cases.c[_BREACH_COLUMN[kind]].is_(None),
                    cases.c.severity == severity,
                    seconds_between(conn, cases.c.created_at, done) > target,
                )
                .order_by(done, cases.c.id)
                .limit(limit - len(ids))
            )
            ids.update((r.id, None) for r in conn.execute(stmt))
    return list(ids)


def record_breaches(
    conn: Connection, targets: SlaTargets, case_ids: Iterable[int], now: datetime
) -> list[Breach]:
    """Record the missed deadlines of these cases (breach time and one timeline event each),
    judged on their rows as they are now; a breach already recorded is not recorded again."""
    ids = sorted(set(case_ids))
    if not ids:
        return []
    stmt = (
        select(
            cases.c.id,
            cases.c.severity,
            cases.c.status,
            cases.c.created_at,
            cases.c.acknowledged_at,
            cases.c.resolved_at,
            cases.c.sla_ack_breached_at,
            cases.c.sla_resolve_breached_at,
        )
        .where(cases.c.id.in_(ids))
        .order_by(cases.c.id)
    )
    if conn.dialect.name == "postgresql":
        # A case being changed right now is left for the next pass rather than waited for.
        stmt = stmt.with_for_update(skip_locked=True)
    found = [b for row in conn.execute(stmt).mappings() for b in breaches_of(row, targets, now)]
    for kind in KINDS:
        rows = [{"b_id": b.case_id, "b_due": b.due_at} for b in found if b.kind == kind]
        if rows:
            conn.execute(
                update(cases)
                .where(cases.c.id == bindparam("b_id"))
                .values({_BREACH_COLUMN[kind]: bindparam("b_due")}),
                rows,
            )
    timeline.record(
        conn,
        [
            timeline.event_row(
                b.case_id,
                BREACH_EVENT,
                field=b.kind,
                detail={
                    "due_at": b.due_at.isoformat(),
                    "target_seconds": _number(b.target_seconds),
                    "severity": b.severity,
                },
                at=now,
            )
            for b in found
        ],
    )
    return found


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


class SlaWatcher(PassLoop):
    """Records missed SLA deadlines, at most `batch` cases per pass (each pass one short
    background transaction in the writer), every `poll_seconds`; 0 turns it off."""

    thread_name = "casefold-sla"
    failure_message = "SLA check failed; trying again shortly"

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        targets: SlaTargets,
        *,
        poll_seconds: float,
        batch: int = 500,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(poll_seconds if poll_seconds > 0 else 30.0)
        self.engine = engine
        self.writer = writer
        self.targets = targets
        self.batch = batch
        self.clock = clock or (lambda: datetime.now(UTC))
        self.recorded = 0
        self._on = poll_seconds > 0
        self._late_since: datetime | None = None

    def enabled(self) -> bool:
        return self._on and bool(self.targets)

    def work(self) -> int:
        """One pass: record up to `batch` cases' breaches; return how many were recorded."""
        if not self.targets:
            return 0
        now = self.clock()
        late_since = self._late_since or now - FIRST_LOOKBACK
        # Read outside the writer: nothing due (the usual case) costs the writer nothing.
        with self.engine.connect() as conn:
            ids = candidate_ids(conn, self.targets, now, self.batch, late_since=late_since)
        found: Sequence[Breach] = []
        if ids:
            found = self.writer.run(
                lambda conn: record_breaches(conn, self.targets, ids, now),
                timeout=None,
                background=True,
            )
        if len(ids) < self.batch:
            # Every candidate up to `now` was seen: later passes need only look a little back.
            self._late_since = now - LATE_SLACK
        if found:
            self.recorded += len(found)
            log.info("SLA: %d breach(es) recorded", len(found))
        return len(found)
