"""Folding stored alerts into cases, in the writer's transaction.

`fold_pending` claims a batch of pending alerts and, for each, either joins the open case of its
(rule, key) or opens a new one. The partial unique index on cases(fold_rule, fold_key) WHERE
fold_open guarantees one open case per slot even with several workers: a worker that loses the
race to open the case gets an IntegrityError inside a savepoint, and joins the winner's case.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, bindparam, func, select, tuple_, update
from sqlalchemy import case as sql_case
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from casefold.cases import service, timeline
from casefold.cases.model import higher_severity, severity_for_level
from casefold.errors import InvalidAlertError
from casefold.folding.hints import FoldHint, FoldHints
from casefold.folding.rules import FoldDecision, FoldRule, choose, join_reason
from casefold.sources.model import NormalizedAlert, Observable
from casefold.sources.normalized import complete_alert
from casefold.store.db import sqlite_time
from casefold.store.tables import (
    ALERT_FOLDED,
    ALERT_PENDING,
    ALERT_UNMATCHED,
    alerts,
    case_observables,
    cases,
)

log = logging.getLogger("casefold.folding")

# The fold's statements, built once: in the small slices folded while intake is busy, building
# and cache-keying them each time cost more than running them. On SQLite the hot ones go straight
# to the driver (as intake's and the timeline's inserts do), skipping per-row parameter
# processing; times are written in the format SQLAlchemy's DateTime uses there.
_PENDING_PG = (
    select(alerts.c.id, alerts.c.source, alerts.c.normalized, alerts.c.raw)
    .where(alerts.c.state == ALERT_PENDING)
    .order_by(alerts.c.id)
    .limit(bindparam("n"))
    .with_for_update(skip_locked=True)
)
_SQLITE_PENDING = (
    f"SELECT id, source, normalized, raw FROM alerts WHERE state = '{ALERT_PENDING}' "
    "ORDER BY id LIMIT ?"
)
# With fold hints waiting: the pending alerts' keys first, the documents only of those without.
_SQLITE_PENDING_KEYS = (
    f"SELECT id, dedup_key FROM alerts WHERE state = '{ALERT_PENDING}' ORDER BY id LIMIT ?"
)
_FOLD_ALERTS = (
    update(alerts)
    .where(alerts.c.id == bindparam("a_id"))
    .values(
        state=bindparam("a_state"),
        case_id=bindparam("a_case"),
        fold_rule=bindparam("a_rule"),
        # The normalised view of an alert file intake stored with its header only; None keeps
        # the stored one (SQL NULL, not JSON null, hence none_as_null).
        normalized=func.coalesce(
            bindparam("a_view", type_=JSON(none_as_null=True)), alerts.c.normalized
        ),
    )
)
_SQLITE_FOLD_ALERTS = (
    "UPDATE alerts SET state = ?, case_id = ?, fold_rule = ?, "
    "normalized = coalesce(?, normalized) WHERE id = ?"
)
_FOLD_CASES = (
    update(cases)
    .where(cases.c.id == bindparam("c_id"))
    .values(
        alert_count=bindparam("c_count"),
        first_seen=bindparam("c_first"),
        last_seen=bindparam("c_last"),
        severity=bindparam("c_sev"),
        updated_at=bindparam("c_now"),
    )
)
_SQLITE_FOLD_CASES = (
    "UPDATE cases SET alert_count = ?, first_seen = ?, last_seen = ?, severity = ?, "
    "updated_at = ? WHERE id = ?"
)
# SQLite's two-argument min() and max() compare the stored time texts, which sort as times.
_SQLITE_UPSERT_OBSERVABLES = (
    "INSERT INTO case_observables "
    "(case_id, type, value, kind, public, first_seen, last_seen, alert_count) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, type, value) DO UPDATE SET "
    "alert_count = alert_count + excluded.alert_count, "
    "first_seen = min(first_seen, excluded.first_seen), "
    "last_seen = max(last_seen, excluded.last_seen)"
)


def _upsert_observables_pg() -> Insert:
    stmt = postgresql.insert(case_observables)
    col, new = case_observables.c, stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[col.case_id, col.type, col.value],
        set_={
            "alert_count": col.alert_count + new.alert_count,
            "first_seen": sql_case(
                (new.first_seen < col.first_seen, new.first_seen), else_=col.first_seen
            ),
            "last_seen": sql_case(
                (new.last_seen > col.last_seen, new.last_seen), else_=col.last_seen
            ),
        },
    )


_UPSERT_OBSERVABLES_PG = _upsert_observables_pg()


@dataclass
class _OpenCase:
    id: int
    alert_count: int
    first_seen: datetime
    last_seen: datetime
    severity: str
    stored_severity: str
    dirty: bool = False
    observables: dict[tuple[str, str], list[Any]] = field(default_factory=dict)


@dataclass
class FoldedAlert:
    """One alert of a fold batch, as the after-fold hook (playbooks) sees it."""

    alert_id: int
    view: dict[str, Any] | bytes  # the normalised view, or its JSON
    doc: dict[str, Any] | str  # the alert's document, or its JSON
    case_id: int | None
    opened: bool  # this alert opened its case

    # Decoded on first use: with no playbook nobody reads them.
    @property
    def normalized(self) -> dict[str, Any]:
        if isinstance(self.view, bytes):
            self.view = orjson.loads(self.view)
        return self.view

    @property
    def raw(self) -> dict[str, Any]:
        if isinstance(self.doc, str):
            self.doc = orjson.loads(self.doc)
        return self.doc


@dataclass
class FoldResult:
    alerts: int = 0
    opened: int = 0
    joined: int = 0
    unmatched: int = 0


def render_summary(rule: FoldRule, key: str, alert: NormalizedAlert) -> str:
    # Plain replacement, never str.format: an alert's text must not reach format's traversal.
    text = rule.summary
    for name, value in (
        ("{title}", alert.title),
        ("{key}", key),
        ("{key_last}", key.rsplit("/", 1)[-1]),
        ("{agent}", alert.agent_name or alert.agent_id or "unknown agent"),
        ("{rule}", rule.name),
    ):
        text = text.replace(name, value)
    return text[:500] or alert.title[:500]


_SLOTS_PER_QUERY = 200


@functools.cache
def _sqlite_alerts_by_id(n: int) -> str:
    return f"SELECT id, source, normalized, raw FROM alerts WHERE id IN ({', '.join('?' * n)})"


@functools.cache
def _sqlite_open_cases(slots: int) -> str:
    """The open cases of `slots` (rule, key) pairs; the row-value IN is served by the partial
    unique index ux_cases_fold_open."""
    pairs = ", ".join(["(?, ?)"] * slots)
    return (
        "SELECT id, fold_rule, fold_key, alert_count, first_seen, last_seen, severity, "
        f"created_at FROM cases WHERE fold_open AND (fold_rule, fold_key) IN (VALUES {pairs})"
    )


def _stored_utc(text: str) -> datetime:
    """A time as `sqlite_time` stores it (UTC wall time, no offset)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Folder:
    """Holds the rules; `fold_pending(conn)` is the unit of work the writer runs."""

    def __init__(
        self,
        rules: list[FoldRule],
        batch_size: int = 500,
        after_fold: Callable[[Connection, list[FoldedAlert]], Any] | None = None,
        hints: FoldHints | None = None,
    ) -> None:
        self.rules = rules
        # Alerts normalised and decided ahead by the tailer's helper process (SQLite).
        self.hints = hints
        self.hinted = 0  # alerts folded from a hint
        self.batch_size = batch_size
        # Called in the folding transaction with every alert of the batch (playbooks queue their
        # runs there, so an alert is folded and its runs queued atomically).
        self.after_fold = after_fold

    def fold_pending(self, conn: Connection, limit: int | None = None) -> FoldResult:
        """Fold up to `limit` (default: batch_size) pending alerts, oldest first."""
        sqlite = conn.dialect.name == "sqlite"
        n = limit or self.batch_size
        hinted: dict[int, FoldHint] = {}
        if sqlite and self.hints:
            keys = conn.exec_driver_sql(_SQLITE_PENDING_KEYS, (n,)).all()
            found = self.hints.take(key for _, key in keys)
            hinted = {i: found[key] for i, key in keys if key in found}
            rest = [i for i, _ in keys if i not in hinted]
            rows = (
                conn.exec_driver_sql(_sqlite_alerts_by_id(len(rest)), tuple(rest)).all()
                if rest
                else []
            )
        elif sqlite:
            # Straight through the driver: the JSON column's result processing, then decoding
            # the document again below, cost more than the query.
            rows = conn.exec_driver_sql(_SQLITE_PENDING, (n,)).all()
        else:
            rows = conn.execute(_PENDING_PG, {"n": n}).all()
        result = FoldResult(alerts=len(rows) + len(hinted))
        if not result.alerts:
            return result
        open_cases: dict[tuple[str, str], _OpenCase] = {}
        alert_updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        decided: list[tuple[int, NormalizedAlert, FoldDecision | None]] = []
        docs: dict[int, tuple[dict[str, Any] | bytes, dict[str, Any] | str]] = {}
        views: dict[int, str] = {}  # normalised views completed here
        for row in rows:
            raw = orjson.loads(row.raw)
            norm = row.normalized
            if isinstance(norm, str):
                norm = orjson.loads(norm)
            if norm is None:  # stored by file intake with its header only: normalise it now
                try:
                    alert, view = complete_alert(row.source, raw)
                except InvalidAlertError as exc:  # not for any row this version stored
                    log.error("alert %d cannot be normalised, left unfolded: %s", row.id, exc)
                    alert_updates.append(_unmatched(row.id))
                    result.unmatched += 1
                    continue
                views[row.id] = view.decode("utf-8")
                docs[row.id] = (view, raw)
            else:
                alert = _from_dict(norm)
                docs[row.id] = (norm, raw)
            decided.append((row.id, alert, choose(self.rules, alert, raw)))
        if hinted:
            self.hinted += len(hinted)
            rules = self.rules
            for alert_id, hint in hinted.items():
                docs[alert_id] = (hint.view, hint.raw)
                decision = None if hint.rule is None else FoldDecision(rules[hint.rule], hint.key)
                decided.append((alert_id, hint.alert, decision))
            if rows:  # oldest first, as without hints
                decided.sort(key=lambda d: d[0])
        # Take every slot's case (lock it, or open it) in one global order before folding, so
        # that two workers whose batches share keys wait for each other instead of deadlocking.
        firsts: dict[tuple[str, str], tuple[FoldDecision, NormalizedAlert]] = {}
        for _, alert, decision in decided:
            if decision is not None:
                firsts.setdefault((decision.rule.name, decision.key), (decision, alert))
        ordered = sorted(firsts)
        open_cases.update(self._load_open_many(conn, ordered))
        to_open: list[tuple[FoldDecision, NormalizedAlert]] = []
        for slot in ordered:
            decision, alert = firsts[slot]
            case = open_cases.get(slot)
            if case is not None and not self._accepts(decision.rule, case, alert):
                self._close_slot(conn, case, decision.rule, open_cases, slot, now)
                case = None
            if case is None:
                to_open.append((decision, alert))
        self._open_many(conn, to_open, open_cases, now)
        opened_by: set[int] = set()
        for alert_id, alert, decision in decided:
            if decision is None:
                alert_updates.append(_unmatched(alert_id))
                result.unmatched += 1
                continue
            case = self._case_for(conn, open_cases, decision, alert, now)
            opened = case.alert_count == 0
            if opened:
                opened_by.add(alert_id)
                result.opened += 1
                detail = {
                    "alert_id": alert_id,
                    "rule": decision.rule.name,
                    "key": decision.key,
                    "reason": f"opened by rule {decision.rule.name}, key {decision.key}",
                }
                events.append(timeline.event_row(case.id, "alert_added", detail=detail, at=now))
            else:
                result.joined += 1
                span = (alert.time_utc - case.first_seen).total_seconds()
                reason = join_reason(decision, case.alert_count + 1, span)
                events.append(
                    timeline.event_row(
                        case.id,
                        "alert_added",
                        detail={
                            "alert_id": alert_id,
                            "rule": decision.rule.name,
                            "key": decision.key,
                            "reason": reason,
                        },
                        at=now,
                    )
                )
            self._add_alert(case, alert)
            alert_updates.append(
                {
                    "a_id": alert_id,
                    "a_state": ALERT_FOLDED,
                    "a_case": case.id,
                    "a_rule": decision.rule.name,
                }
            )
        self._flush(conn, open_cases, now)
        timeline.record(conn, events)
        if sqlite:
            conn.exec_driver_sql(
                _SQLITE_FOLD_ALERTS,
                [
                    (u["a_state"], u["a_case"], u["a_rule"], views.get(u["a_id"]), u["a_id"])
                    for u in alert_updates
                ],
            )
        else:
            for u in alert_updates:
                view = views.get(u["a_id"])
                u["a_view"] = orjson.Fragment(view) if view is not None else None
            conn.execute(_FOLD_ALERTS, alert_updates)
        if self.after_fold is not None:
            self.after_fold(
                conn,
                [
                    FoldedAlert(
                        u["a_id"],
                        docs[u["a_id"]][0],
                        docs[u["a_id"]][1],
                        u["a_case"],
                        u["a_id"] in opened_by,
                    )
                    for u in alert_updates
                    if u["a_id"] in docs
                ],
            )
        return result

    def _case_for(
        self,
        conn: Connection,
        open_cases: dict[tuple[str, str], _OpenCase],
        decision: FoldDecision,
        alert: NormalizedAlert,
        now: datetime,
    ) -> _OpenCase:
        """The case this alert folds into: its slot's case if it accepts it, else a new one."""
        slot = (decision.rule.name, decision.key)
        case = open_cases[slot]  # every slot of the batch was taken before folding started
        if self._accepts(decision.rule, case, alert):
            return case
        # Full, or the window passed in the middle of this batch: the rest go to a new case.
        self._close_slot(conn, case, decision.rule, open_cases, slot, now)
        self._open_many(conn, [(decision, alert)], open_cases, now)
        return open_cases[slot]

    def _open_many(
        self,
        conn: Connection,
        wanted: list[tuple[FoldDecision, NormalizedAlert]],
        open_cases: dict[tuple[str, str], _OpenCase],
        now: datetime,
    ) -> None:
        """Open a case for each slot, in slot order; a slot opened by another worker is joined."""
        if not wanted:
            return
        specs = [
            {
                "summary": render_summary(decision.rule, decision.key, alert),
                "description": _description(decision, alert),
                "severity": severity_for_level(alert.level),
                "tags": [
                    *decision.rule.tags,
                    *(alert.groups if decision.rule.tag_groups else ()),
                    *alert.mitre_ids,
                ],
                "source": alert.source,
                "fold_rule": decision.rule.name,
                "fold_key": decision.key,
                "first_seen": alert.time_utc,
            }
            for decision, alert in wanted
        ]
        opened = service.open_fold_cases(conn, specs, at=now)
        lost = [(d.rule.name, d.key) for d, _ in wanted if (d.rule.name, d.key) not in opened]
        if lost:
            found = self._load_open_many(conn, lost)
            if len(found) != len(lost):
                raise RuntimeError("a fold slot was taken but its case is not visible; retrying")
            open_cases.update(found)
        for decision, alert in wanted:
            slot = (decision.rule.name, decision.key)
            if slot in opened:
                severity = severity_for_level(alert.level)
                open_cases[slot] = _OpenCase(
                    id=opened[slot],
                    alert_count=0,
                    first_seen=alert.time_utc,
                    last_seen=alert.time_utc,
                    severity=severity,
                    stored_severity=severity,
                    dirty=True,
                )

    @staticmethod
    def _accepts(rule: FoldRule, case: _OpenCase, alert: NormalizedAlert) -> bool:
        if case.alert_count >= rule.max_alerts:
            return False
        # The window slides: an alert joins while it is within `window` of the case's last alert
        # (or before it: alerts can arrive out of order).
        return alert.time_utc - case.last_seen <= rule.window

    @staticmethod
    def _load_open_many(
        conn: Connection, slots: list[tuple[str, str]]
    ) -> dict[tuple[str, str], _OpenCase]:
        """The open cases of these slots, in one query (locked, in slot order, on PostgreSQL)."""
        found: dict[tuple[str, str], _OpenCase] = {}
        sqlite = conn.dialect.name == "sqlite"
        for i in range(0, len(slots), _SLOTS_PER_QUERY):
            chunk = slots[i : i + _SLOTS_PER_QUERY]
            if sqlite:
                # Straight to the driver: building this select (a tuple IN of a new length
                # each time) cost a third of a small fold slice.
                params = [part for slot in chunk for part in slot]
                for row in conn.exec_driver_sql(_sqlite_open_cases(len(chunk)), tuple(params)):
                    case_id, rule, key, count, first, last, severity, created = row
                    first_seen = _stored_utc(first or created)
                    found[(rule, key)] = _OpenCase(
                        id=case_id,
                        alert_count=count,
                        first_seen=first_seen,
                        last_seen=_stored_utc(last) if last else first_seen,
                        severity=severity,
                        stored_severity=severity,
                    )
                continue
            stmt = (
                select(
                    cases.c.id,
                    cases.c.fold_rule,
                    cases.c.fold_key,
                    cases.c.alert_count,
                    cases.c.first_seen,
                    cases.c.last_seen,
                    cases.c.severity,
                    cases.c.created_at,
                )
                .where(cases.c.fold_open, tuple_(cases.c.fold_rule, cases.c.fold_key).in_(chunk))
                .order_by(cases.c.fold_rule, cases.c.fold_key)
                # Several workers may fold into one case: the row lock serialises their
                # counters, and taking the locks in slot order keeps two workers from
                # deadlocking.
                .with_for_update()
            )
            for row in conn.execute(stmt):
                first = _as_utc(row.first_seen or row.created_at)
                found[(row.fold_rule, row.fold_key)] = _OpenCase(
                    id=row.id,
                    alert_count=row.alert_count,
                    first_seen=first,
                    last_seen=_as_utc(row.last_seen or first),
                    severity=row.severity,
                    stored_severity=row.severity,
                )
        return found

    def _close_slot(
        self,
        conn: Connection,
        case: _OpenCase,
        rule: FoldRule,
        open_cases: dict[tuple[str, str], _OpenCase],
        slot: tuple[str, str],
        now: datetime,
    ) -> None:
        self._flush(conn, {slot: case}, now)
        open_cases.pop(slot, None)
        why = (
            f"reached its maximum of {rule.max_alerts} alerts"
            if case.alert_count >= rule.max_alerts
            else f"no alert for key {slot[1]} within {rule.window}"
        )
        conn.execute(update(cases).where(cases.c.id == case.id).values(fold_open=False))
        timeline.record(
            conn,
            [
                timeline.event_row(
                    case.id,
                    "fold_closed",
                    detail={
                        "rule": rule.name,
                        "key": slot[1],
                        "reason": f"stopped taking alerts: {why}",
                    },
                    at=now,
                )
            ],
        )

    @staticmethod
    def _add_alert(case: _OpenCase, alert: NormalizedAlert) -> None:
        at = alert.time_utc
        case.alert_count += 1
        case.dirty = True
        if at < case.first_seen:
            case.first_seen = at
        if at > case.last_seen:
            case.last_seen = at
        case.severity = higher_severity(case.severity, severity_for_level(alert.level))
        sightings = case.observables
        for obs in alert.observables:
            key = (obs.type, obs.value)
            entry = sightings.get(key)
            if entry is None:
                sightings[key] = [obs, at, at, 1]
            else:
                if at < entry[1]:
                    entry[1] = at
                if at > entry[2]:
                    entry[2] = at
                entry[3] += 1

    @staticmethod
    def _flush(
        conn: Connection, open_cases: dict[tuple[str, str], _OpenCase], now: datetime
    ) -> None:
        """Write the counters, severities and observables of every touched case in bulk."""
        dirty = [c for c in open_cases.values() if c.dirty]
        if not dirty:
            return
        events = []
        rows = []
        for case in dirty:
            # The stored severity was read under this transaction's lock, so comparing with it
            # (not re-reading) is safe, and an analyst's higher severity is never lowered.
            new_sev = higher_severity(case.stored_severity, case.severity)
            if new_sev != case.stored_severity:
                events.append(
                    timeline.event_row(
                        case.id,
                        "severity_changed",
                        field="severity",
                        old=case.stored_severity,
                        new=new_sev,
                        detail={"reason": "raised by a joining alert"},
                        at=now,
                    )
                )
                case.stored_severity = new_sev
            case.severity = new_sev
            rows.append(
                {
                    "c_id": case.id,
                    "c_count": case.alert_count,
                    "c_first": case.first_seen,
                    "c_last": case.last_seen,
                    "c_sev": new_sev,
                    "c_now": now,
                }
            )
        if conn.dialect.name == "sqlite":
            stamp = sqlite_time(now)
            conn.exec_driver_sql(
                _SQLITE_FOLD_CASES,
                [
                    (
                        r["c_count"],
                        sqlite_time(r["c_first"]),
                        sqlite_time(r["c_last"]),
                        r["c_sev"],
                        stamp,
                        r["c_id"],
                    )
                    for r in rows
                ],
            )
        else:
            conn.execute(_FOLD_CASES, rows)
        timeline.record(conn, events)
        _upsert_observables(conn, dirty)
        for case in dirty:
            case.dirty = False
            case.observables.clear()


def _upsert_observables(conn: Connection, touched: list[_OpenCase]) -> None:
    """One INSERT … ON CONFLICT DO UPDATE for all new sightings: no read of what is stored."""
    if conn.dialect.name != "sqlite":
        rows = [
            {
                "case_id": case.id,
                "type": otype,
                "value": value,
                "kind": obs.kind,
                "public": obs.public,
                "first_seen": first,
                "last_seen": last,
                "alert_count": count,
            }
            for case in touched
            for (otype, value), (obs, first, last, count) in case.observables.items()
        ]
        if rows:
            conn.execute(_UPSERT_OBSERVABLES_PG, rows)
        return
    times: dict[int, str] = {}  # an alert's time is shared by its observables: format it once

    def when(value: datetime) -> str:
        text = times.get(id(value))
        if text is None:
            text = times[id(value)] = sqlite_time(value)
        return text

    params = [
        (case.id, otype, value, obs.kind, obs.public, when(first), when(last), count)
        for case in touched
        for (otype, value), (obs, first, last, count) in case.observables.items()
    ]
    if params:
        conn.exec_driver_sql(_SQLITE_UPSERT_OBSERVABLES, params)


def _unmatched(alert_id: int) -> dict[str, Any]:
    return {"a_id": alert_id, "a_state": ALERT_UNMATCHED, "a_case": None, "a_rule": None}


def _description(decision: FoldDecision, alert: NormalizedAlert) -> str:
    lines = [
        f"Opened by folding rule {decision.rule.name} for key {decision.key}.",
        f"First alert: {alert.title} (rule {alert.rule_id or '-'}, level {alert.level}).",
    ]
    if alert.agent_name or alert.agent_id:
        lines.append(f"Agent: {alert.agent_name or '-'} ({alert.agent_id or '-'}).")
    if alert.techniques:
        lines.append(
            "MITRE ATT&CK: "
            + ", ".join(f"{i} {t}" for i, t in zip(alert.mitre_ids, alert.techniques, strict=False))
        )
    return "\n".join(lines)


def _from_dict(d: dict[str, Any]) -> NormalizedAlert:
    """Rebuild the normalised alert stored as JSON at intake."""
    obs = [Observable(**o) for o in d.get("observables", [])]
    fields = {k: v for k, v in d.items() if k not in ("observables", "time_utc")}
    return NormalizedAlert(
        **fields,
        time_utc=datetime.fromisoformat(d["time_utc"].replace("Z", "+00:00")),
        observables=obs,
    )
