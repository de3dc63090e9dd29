"""The dashboard: alerts, rules, agents, techniques, cases and SLAs over a window, as SVG charts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission
from casefold.cases.sla import SeverityStats
from casefold.report import BANDS
from casefold.stats import DAY, DEFAULT_WINDOW, WINDOWS, DashboardStats, dashboard_stats
from casefold.store.tables import CASE_STATUSES
from casefold.web.charts import (
    BAND_COLORS,
    SERIES_COLORS,
    STATUS_COLORS,
    grouped_hbar_chart,
    hbar_chart,
    human_duration,
    stacked_columns,
)
from casefold.web.deps import require_page, runtime_of
from casefold.web.render import PageError, page

router = APIRouter(include_in_schema=False)

CACHE_SECONDS = 30.0
WINDOW_NAMES = {24: "24 hours", 168: "7 days", 720: "30 days"}
# The smaller charts, in page order: (chart, heading). The alerts chart spans the page above them.
PANELS = (
    ("rules", "Top rules"),
    ("agents", "Top agents"),
    ("techniques", "MITRE ATT&CK techniques"),
    ("statuses", "Cases by status"),
    ("mtta", "Mean time to acknowledge"),
    ("mttr", "Mean time to resolve"),
    ("breaches", "SLA breaches"),
)


class StatsCache:
    """Computed stats per window, reused for `ttl` seconds.

    A wall display reloading every few seconds, or a room of analysts opening the page, would
    otherwise aggregate the same window again and again; numbers up to 30 s old are fine for an
    overview. Longer windows (daily bars) are kept proportionally longer: 7 and 30 days cost
    seconds to aggregate over a million alerts and barely move in a few minutes. One app (one
    Runtime) has one cache, on `app.state`; `clock` is injectable so tests can expire it.
    """

    def __init__(
        self, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[int, tuple[float, DashboardStats]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    def ttl_for(self, hours: int) -> float:
        return self.ttl * max(1, hours // 24)

    def _fresh(self, key: int) -> DashboardStats | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and self.clock() - hit[0] < self.ttl_for(key):
                return hit[1]
            return None

    def get(self, key: int, compute: Callable[[], DashboardStats]) -> DashboardStats:
        found = self._fresh(key)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        # One computation per window at a time: the others wait for it rather than repeat it.
        with key_lock:
            found = self._fresh(key)
            if found is not None:
                return found
            value = compute()
            with self._lock:
                self._entries[key] = (self.clock(), value)
            return value


def cache_of(request: Request) -> StatsCache:
    state = request.app.state
    cache = getattr(state, "dashboard_cache", None)
    if cache is None:
        cache = state.dashboard_cache = StatsCache()
    return cache


def parse_hours(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_WINDOW
    try:
        hours = int(raw)
    except ValueError:
        hours = -1
    if hours not in WINDOWS:
        choices = ", ".join(str(h) for h in WINDOWS)
        raise PageError(400, "Bad request", f"hours must be one of {choices}.")
    return hours


def _bucket_names(stats: DashboardStats) -> tuple[list[str], list[str]]:
    """Short axis labels and full tooltip names of the window's buckets."""
    daily = stats.window.step == DAY
    labels: list[str] = []
    tips: list[str] = []
    for b in stats.buckets:
        start: datetime = b.start
        if daily:
            labels.append(start.strftime("%m-%d"))
            tips.append(start.strftime("%Y-%m-%d UTC"))
        else:
            labels.append(start.strftime("%H:00"))
            tips.append(f"{start:%Y-%m-%d %H:00}–{(start + stats.window.step):%H:00} UTC")
    return labels, tips


def build_charts(stats: DashboardStats) -> dict[str, Markup]:
    """Every chart of the page, from the numbers."""
    name = WINDOW_NAMES[stats.window.hours]
    no_alerts = f"No alerts in the last {name}"
    labels, tips = _bucket_names(stats)
    per = "day" if stats.window.step == DAY else "hour"
    charts: dict[str, Markup] = {
        "alerts": stacked_columns(
            labels,
            [
                {
                    "name": band,
                    "color": BAND_COLORS[band],
                    "values": [b.bands[band] for b in stats.buckets],
                }
                for band, _, _ in BANDS
            ],
            title=f"Alerts per {per} by level band, last {name}",
            empty=no_alerts,
            tips=tips,
        ),
        "rules": hbar_chart(
            [(f"{r.key} {r.label}".strip(), r.count) for r in stats.top_rules],
            title=f"Top rules, last {name}",
            empty=no_alerts,
            tips=[f"Rule {r.key}: {r.label}" for r in stats.top_rules],
        ),
        "agents": hbar_chart(
            [(f"{a.key} ({a.label})", a.count) for a in stats.top_agents],
            title=f"Top agents, last {name}",
            empty=no_alerts,
            tips=[f"Agent {a.key} (id {a.label})" for a in stats.top_agents],
        ),
        "techniques": hbar_chart(
            [(f"{t.key} {t.label}".strip(), t.count) for t in stats.top_techniques],
            title=f"Top MITRE ATT&CK techniques, last {name}",
            empty=f"No alerts with MITRE techniques in the last {name}",
        ),
        "statuses": hbar_chart(
            [(s.replace("_", " "), stats.cases_by_status.get(s, 0)) for s in CASE_STATUSES],
            title="Cases by status (all cases)",
            empty="No cases yet",
            colors=[STATUS_COLORS[s] for s in CASE_STATUSES],
            label_width=90,
        ),
    }
    charts.update(_sla_charts(stats.sla, name))
    return charts


def _sla_charts(sla: list[SeverityStats], name: str) -> dict[str, Markup]:
    rows = [s for s in sla if s.cases]
    severities = [s.severity for s in rows]
    no_cases = f"No cases opened in the last {name}"
    # The two means get a chart each: on one scale, minutes to acknowledge would vanish beside
    # days to resolve.
    return {
        "mtta": hbar_chart(
            [(s.severity, s.mtta_seconds) for s in rows],
            title=f"Mean time to acknowledge by severity, cases opened in the last {name}",
            empty=no_cases if not rows else "No case acknowledged yet",
            colors=[SERIES_COLORS[0]],
            fmt=human_duration,
            tips=[f"{s.severity} ({s.acknowledged} of {s.cases} acknowledged)" for s in rows],
            label_width=110,
        ),
        "mttr": hbar_chart(
            [(s.severity, s.mttr_seconds) for s in rows],
            title=f"Mean time to resolve by severity, cases opened in the last {name}",
            empty=no_cases if not rows else "No case resolved yet",
            colors=[SERIES_COLORS[1]],
            fmt=human_duration,
            tips=[f"{s.severity} ({s.resolved} of {s.cases} resolved)" for s in rows],
            label_width=110,
        ),
        "breaches": grouped_hbar_chart(
            severities,
            [
                {
                    "name": "acknowledge deadline missed",
                    "color": SERIES_COLORS[2],
                    "values": [s.ack_breaches for s in rows],
                },
                {
                    "name": "resolve deadline missed",
                    "color": SERIES_COLORS[3],
                    "values": [s.resolve_breaches for s in rows],
                },
            ],
            title=f"SLA breaches by severity, cases opened in the last {name}",
            empty=no_cases if not rows else f"No SLA breaches in the last {name}",
        ),
    }


@router.get("/dashboard", dependencies=[Depends(require_page(Permission.READ))])
async def dashboard(request: Request) -> Response:
    hours = parse_hours(request.query_params.get("hours"))
    runtime = runtime_of(request)
    cache = cache_of(request)

    def compute() -> DashboardStats:
        return dashboard_stats(runtime.engine.connect, hours)

    stats = await run_in_threadpool(cache.get, hours, compute)
    return page(
        request,
        "dashboard.html",
        stats=stats,
        hours=hours,
        windows=WINDOW_NAMES,
        window_name=WINDOW_NAMES[hours],
        charts=build_charts(stats),
        panels=PANELS,
        band_totals=stats.band_totals,
        cache_seconds=int(cache.ttl_for(hours)),
    )
