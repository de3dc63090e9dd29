"""Counts over the store for the dashboard: alerts per time bucket and level band, top rules,
agents and MITRE techniques over a window, cases by status, and the SLA figures.

Everything is counted in SQL (the store can hold a million alerts): a few thousand grouped rows
at most come back, whatever the window. The window is read on `alerts.time_utc` (indexed), since
inclusive and until exclusive, like the alerts API and `casefold report`, whose numbers these
match (same bands, same ties order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, bindparam, func, select, text
from sqlalchemy.engine import Connection

from casefold.cases.sla import SeverityStats, sla_stats
from casefold.report import BANDS, NONE, band_of
from casefold.store.tables import CASE_STATUSES, alerts, cases

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Window length in hours → bucket size: hourly bars for a day, daily bars for a week or a month.
WINDOWS: dict[int, timedelta] = {24: HOUR, 168: DAY, 720: DAY}
DEFAULT_WINDOW = 24
TOP = 10


@dataclass(frozen=True)
class Window:
    """`buckets` consecutive bars of `step`, the last one holding `now` (so it is partial)."""

    hours: int
    step: timedelta
    since: datetime
    until: datetime

    @property
    def buckets(self) -> list[datetime]:
        out: list[datetime] = []
        at = self.since
        while at < self.until:
            out.append(at)
            at += self.step
        return out


def window_for(hours: int, now: datetime) -> Window:
    """The window of `hours` ending with the bucket that holds `now` (aligned on UTC hours/days)."""
    step = WINDOWS.get(hours)
    if step is None:
        raise ValueError(f"window must be one of {', '.join(map(str, WINDOWS))} hours")
    now = now.astimezone(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    if step == DAY:
        current = current.replace(hour=0)
    count = int(timedelta(hours=hours) / step)
    return Window(hours, step, current - (count - 1) * step, current + step)


@dataclass(frozen=True)
class Bucket:
    start: datetime
    bands: dict[str, int]  # every band of `BANDS`, zeros included

    @property
    def total(self) -> int:
        return sum(self.bands.values())


@dataclass(frozen=True)
class TopEntry:
    key: str  # rule id, agent name, technique id ("-" when the alert had none)
    label: str  # rule title, agent id, technique name ("" when unknown)
    count: int


@dataclass
class DashboardStats:
    window: Window
    buckets: list[Bucket]
    top_rules: list[TopEntry]
    top_agents: list[TopEntry]
    top_techniques: list[TopEntry]
    cases_by_status: dict[str, int]
    sla: list[SeverityStats]  # cases created in the window, per severity (highest first)
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def band_totals(self) -> dict[str, int]:
        out = {name: 0 for name, _, _ in BANDS}
        for b in self.buckets:
            for name, n in b.bands.items():
                out[name] += n
        return out

    @property
    def total_alerts(self) -> int:
        return sum(b.total for b in self.buckets)


def _range(w: Window) -> list[Any]:
    # SQLite holds naive UTC text: bind UTC whatever zone the caller used.
    return [
        alerts.c.time_utc >= w.since.astimezone(UTC),
        alerts.c.time_utc < w.until.astimezone(UTC),
    ]


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: the stored text cut to the hour or the day
        value = datetime.strptime(
            value.replace("T", " "), "%Y-%m-%d %H" if len(value) > 10 else "%Y-%m-%d"
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bucket_expr(conn: Connection, w: Window) -> Any:
    if conn.dialect.name == "postgresql":
        unit = "hour" if w.step == HOUR else "day"
        return func.date_trunc(unit, func.timezone("UTC", alerts.c.time_utc))
    # "YYYY-MM-DD HH:MM:SS.ffffff": the leading characters are the hour or the day.
    return func.substr(alerts.c.time_utc, 1, 13 if w.step == HOUR else 10, type_=String)


@dataclass
class AlertCounts:
    """The window's alerts counted three ways, from one pass over them."""

    buckets: list[Bucket]
    rules: Counter[str]  # rule id ("-" for none) → alerts
    agents: Counter[tuple[str, str]]  # (agent name, agent id), "-" for none → alerts
    rule_last_id: dict[str, int]  # rule id → its latest alert in the window (for its title)


def count_alerts(conn: Connection, w: Window) -> AlertCounts:
    """Alerts per bucket and band, per rule and per agent, over the window.

    One GROUP BY over (bucket, level, rule, agent) rather than one query each: the window's rows
    are read once (the reads, not the counting, are what costs), and the few thousand groups
    it returns are summed here.
    """
    bucket = _bucket_expr(conn, w).label("bucket")
    cols = (bucket, alerts.c.level, alerts.c.rule_id, alerts.c.agent_name, alerts.c.agent_id)
    rows = conn.execute(
        select(*cols, func.count().label("n"), func.max(alerts.c.id).label("last_id"))
        .where(*_range(w))
        .group_by(*cols)
    ).all()
    per_bucket: dict[datetime, dict[str, int]] = {
        start: {name: 0 for name, _, _ in BANDS} for start in w.buckets
    }
    rules: Counter[str] = Counter()
    agents: Counter[tuple[str, str]] = Counter()
    last_id: dict[str, int] = {}
    starts: dict[Any, datetime] = {}  # parsed once per bucket, not once per group
    for row in rows:
        start = starts.get(row.bucket) or starts.setdefault(row.bucket, _as_utc(row.bucket))
        if start in per_bucket:  # always, given the range: but never count outside a bar
            per_bucket[start][band_of(row.level)] += row.n
        rule = row.rule_id or NONE
        rules[rule] += row.n
        last_id[rule] = max(last_id.get(rule, 0), row.last_id)
        agents[(row.agent_name or NONE, row.agent_id or NONE)] += row.n
    return AlertCounts(
        [Bucket(start, bands) for start, bands in per_bucket.items()], rules, agents, last_id
    )


def _top(counts: Counter[Any], limit: int) -> list[tuple[Any, int]]:
    # Most first, then by key: the order `casefold report` gives, the same on every run.
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:limit]


def top_rules(conn: Connection, counts: AlertCounts, limit: int = TOP) -> list[TopEntry]:
    """The rules that fired most in the window, with the title of their latest alert there."""
    top = _top(counts.rules, limit)
    ids = [counts.rule_last_id[rule_id] for rule_id, _ in top]
    # Read by primary key: a title can vary (Wazuh fills in fields), and a lookup by rule id
    # would have to sort, or walk back through every alert since, on PostgreSQL.
    titles = {
        r.id: r.title
        for r in conn.execute(select(alerts.c.id, alerts.c.title).where(alerts.c.id.in_(ids)))
    }
    return [
        TopEntry(rule_id, titles.get(counts.rule_last_id[rule_id]) or "", n) for rule_id, n in top
    ]


def top_agents(counts: AlertCounts, limit: int = TOP) -> list[TopEntry]:
    """The agents with the most alerts in the window: (name, id) as Wazuh reports them."""
    return [TopEntry(name, agent_id, n) for (name, agent_id), n in _top(counts.agents, limit)]


# One row per (alert, technique id) of `normalized.mitre_ids` in the window, as plain SQL per
# dialect: JSON arrays are read with json_each (SQLite) or json_array_elements_text (PostgreSQL,
# where the column is `json`). An id listed twice on one alert counts once, as in
# `casefold report`. The first and last alert of each technique come back too: their names are
# read afterwards, by primary key, rather than every alert's names parsed in the scan.
# PostgreSQL parses a `json` value again on every operator: the lateral subquery (OFFSET 0 keeps
# it from being inlined) takes `mitre_ids` out once per alert instead of twice.
_TECHNIQUES_SQL = {
    "sqlite": """
        SELECT j.value AS technique, count(DISTINCT a.id) AS n,
               min(a.id) AS first_id, max(a.id) AS last_id
        FROM alerts AS a, json_each(a.normalized, '$.mitre_ids') AS j
        WHERE a.time_utc >= :since AND a.time_utc < :until AND j.type = 'text'
        GROUP BY j.value ORDER BY n DESC, j.value LIMIT :limit
    """,
    "postgresql": """
        SELECT j.value AS technique, count(DISTINCT a.id) AS n,
               min(a.id) AS first_id, max(a.id) AS last_id
        FROM alerts AS a
        CROSS JOIN LATERAL (SELECT a.normalized -> 'mitre_ids' AS ids OFFSET 0) AS m
        CROSS JOIN LATERAL json_array_elements_text(
            CASE WHEN json_typeof(m.ids) = 'array' THEN m.ids ELSE '[]'::json END
        ) AS j(value)
        WHERE a.time_utc >= :since AND a.time_utc < :until
        GROUP BY j.value ORDER BY n DESC, j.value COLLATE "C" LIMIT :limit
    """,
}


def top_techniques(conn: Connection, w: Window, limit: int = TOP) -> list[TopEntry]:
    """The MITRE ATT&CK techniques on most alerts in the window, with their names."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # The planner guesses 100 elements per array and so a huge cost, which turns on JIT
        # compilation: a fifth of a second spent before the first row, for a query that reads
        # one day of alerts. SET LOCAL ends with this connection's transaction.
        conn.exec_driver_sql("SET LOCAL jit = off")
    sql = _TECHNIQUES_SQL["postgresql" if postgres else "sqlite"]
    stmt = text(sql).bindparams(
        bindparam("since", type_=DateTime(timezone=True)),
        bindparam("until", type_=DateTime(timezone=True)),
        bindparam("limit", type_=Integer),
    )
    top = conn.execute(
        stmt, {"since": w.since.astimezone(UTC), "until": w.until.astimezone(UTC), "limit": limit}
    ).all()
    ids = {i for row in top for i in (row.first_id, row.last_id)}
    docs = {
        r.id: r.normalized
        for r in conn.execute(select(alerts.c.id, alerts.c.normalized).where(alerts.c.id.in_(ids)))
    }
    return [
        TopEntry(
            row.technique,
            _technique_name(docs.get(row.first_id), row.technique)
            or _technique_name(docs.get(row.last_id), row.technique),
            row.n,
        )
        for row in top
    ]


def _technique_name(doc: Any, technique: str) -> str:
    if not isinstance(doc, dict):
        return ""
    ids, names = doc.get("mitre_ids") or [], doc.get("techniques") or []
    # Wazuh writes rule.mitre.id and rule.mitre.technique as parallel lists; when their lengths
    # differ nobody can tell which name goes with which id.
    if not isinstance(ids, list) or not isinstance(names, list) or len(ids) != len(names):
        return ""
    name = names[ids.index(technique)] if technique in ids else None
    return name if isinstance(name, str) else ""


def cases_by_status(conn: Connection) -> dict[str, int]:
    """Every case, counted by status; every status listed, zeros included."""
    out = dict.fromkeys(CASE_STATUSES, 0)
    for row in conn.execute(select(cases.c.status, func.count()).group_by(cases.c.status)):
        out[row[0]] = out.get(row[0], 0) + row[1]
    return out


Connect = Callable[[], AbstractContextManager[Connection]]


def dashboard_stats(connect: Connect, hours: int, now: datetime | None = None) -> DashboardStats:
    """All the dashboard's numbers for the window of `hours` (one of `WINDOWS`) ending `now`.

    `connect` is `engine.connect`. The MITRE query, the costliest (it parses every alert's
    JSON), runs on a second connection in a second thread while the others run: SQLite readers
    in WAL mode and PostgreSQL sessions work side by side, and sqlite3 lets go of the GIL while
    it steps, so the page waits for the slowest query rather than for their sum.
    """
    now = now or datetime.now(UTC)
    w = window_for(hours, now)

    def techniques() -> list[TopEntry]:
        with connect() as conn:
            return top_techniques(conn, w)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="casefold-stats") as pool:
        pending = pool.submit(techniques)
        with connect() as conn:
            counts = count_alerts(conn, w)
            rules = top_rules(conn, counts)
            statuses = cases_by_status(conn)
            sla = sla_stats(conn, w.since)
        return DashboardStats(
            window=w,
            buckets=counts.buckets,
            top_rules=rules,
            top_agents=top_agents(counts),
            top_techniques=pending.result(),
            cases_by_status=statuses,
            sla=sla,
            computed_at=now,
        )
