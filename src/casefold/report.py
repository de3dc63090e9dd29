"""Counts over many Wazuh alerts: by level and band, top rules, agents and MITRE techniques.

`casefold report` reads alerts.json files (plain or gzipped NDJSON) or the store's `alerts`
table; both feed the same `AlertReport`, so the two give the same numbers for the same alerts.
Only counters are kept in memory (plus one key per alert, to skip repeats as intake does).
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from casefold.errors import CasefoldError, InvalidInputError
from casefold.sources.alert_files import numbered_lines
from casefold.sources.model import NormalizedAlert
from casefold.sources.normalized import complete_view
from casefold.sources.wazuh import MAX_LEVEL, parse_wazuh_alert
from casefold.store.tables import alerts

# Wazuh's own severity bands for rule levels (dashboard and documentation).
BANDS: tuple[tuple[str, int, int], ...] = (
    ("low", 0, 6),
    ("medium", 7, 11),
    ("high", 12, 14),
    ("critical", 15, MAX_LEVEL),
)
MAX_LISTED_BAD = 20  # bad lines listed with their reason; the rest are only counted
STORE_BATCH = 2000
NONE = "-"


def band_of(level: int) -> str:
    for name, low, high in BANDS:
        if low <= level <= high:
            return name
    return "critical" if level > MAX_LEVEL else "low"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _top(counts: Counter[Any], top: int) -> list[tuple[Any, int]]:
    # Count first, then the key, so ties come out the same on every run.
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]


@dataclass
class _Rule:
    description: str
    max_level: int


@dataclass
class AlertReport:
    """Accumulates counts; feed it with `add` (and `add_bad`), read it with `to_dict`."""

    sources: list[str] = field(default_factory=list)  # files read, or ["store"]
    total: int = 0
    duplicates: int = 0  # same source, node and id as an earlier alert: not counted again
    outside_window: int = 0  # alerts skipped by since/until
    levels: Counter[int] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    rule_info: dict[str, _Rule] = field(default_factory=dict)
    agents: Counter[tuple[str, str]] = field(default_factory=Counter)  # (name, id)
    techniques: Counter[str] = field(default_factory=Counter)
    technique_names: dict[str, str] = field(default_factory=dict)
    tactics: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None
    bad_count: int = 0
    bad: list[dict[str, Any]] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, alert: NormalizedAlert) -> bool:
        """Count one alert; False (and only `duplicates` grows) when it was seen before."""
        key = alert.dedup_key
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(key)
        self.total += 1
        self.levels[alert.level] += 1
        self.by_source[alert.source] += 1
        rule_id = alert.rule_id or NONE
        self.rules[rule_id] += 1
        info = self.rule_info.get(rule_id)
        if info is None:
            self.rule_info[rule_id] = _Rule(alert.title, alert.level)
        elif alert.level > info.max_level:
            info.max_level = alert.level
        self.agents[(alert.agent_name or NONE, alert.agent_id or NONE)] += 1
        # Wazuh writes rule.mitre.id and rule.mitre.technique as parallel lists.
        names: list[str | None] = list(alert.techniques)
        if len(names) != len(alert.mitre_ids):
            names = [None] * len(alert.mitre_ids)  # cannot tell which name goes with which id
        counted: set[str] = set()
        for technique, name in zip(alert.mitre_ids, names, strict=True):
            if technique in counted:
                continue
            counted.add(technique)
            self.techniques[technique] += 1
            if name and technique not in self.technique_names:
                self.technique_names[technique] = name
        for tactic in dict.fromkeys(alert.tactics):
            self.tactics[tactic] += 1
        for group in dict.fromkeys(alert.groups):
            self.groups[group] += 1
        at = alert.time_utc
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at
        return True

    def add_bad(self, line_no: int, reason: str, *, file: str | None = None) -> None:
        """Count a line that is not JSON or not an alert; the first few are kept with reasons."""
        self.bad_count += 1
        if len(self.bad) < MAX_LISTED_BAD:
            entry: dict[str, Any] = {"line": line_no, "reason": reason}
            if file is not None:
                entry["file"] = file
            self.bad.append(entry)

    def by_band(self) -> dict[str, int]:
        out = {name: 0 for name, _, _ in BANDS}
        for level, n in self.levels.items():
            out[band_of(level)] += n
        return out

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "total": self.total,
            "duplicates": self.duplicates,
            "outside_window": self.outside_window,
            "first": _iso(self.first),
            "last": _iso(self.last),
            # Every level 0–16, zeros included, so tables and scripts see a fixed shape.
            "by_level": {str(lv): self.levels.get(lv, 0) for lv in range(MAX_LEVEL + 1)},
            "by_band": self.by_band(),
            "by_source": dict(_top(self.by_source, len(self.by_source))),
            "top_rules": [
                {
                    "rule_id": rule_id,
                    "description": self.rule_info[rule_id].description,
                    "count": n,
                    "max_level": self.rule_info[rule_id].max_level,
                }
                for rule_id, n in _top(self.rules, top)
            ],
            "top_agents": [
                {"name": name, "id": agent_id, "count": n}
                for (name, agent_id), n in _top(self.agents, top)
            ],
            "top_techniques": [
                {"id": tid, "name": self.technique_names.get(tid), "count": n}
                for tid, n in _top(self.techniques, top)
            ],
            "top_tactics": [{"name": t, "count": n} for t, n in _top(self.tactics, top)],
            "top_groups": [{"name": g, "count": n} for g, n in _top(self.groups, top)],
            "bad_line_count": self.bad_count,
            "bad_lines": list(self.bad),
        }


def _in_window(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    # Same convention as the alerts API: since inclusive, until exclusive.
    return (since is None or at >= since) and (until is None or at < until)


def report_from_files(
    paths: Iterable[Path | str],
    *,
    progress: Callable[[int], None] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AlertReport:
    """Report over alerts.json files (NDJSON, `.gz` too). `progress` gets on-disk bytes read.

    A missing file raises InvalidInputError before anything is read; a line that is not JSON or
    not an alert is counted with its line number; a file that breaks off (truncated gzip) is
    counted as one bad line and the next file is read.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise InvalidInputError(f"no such file: {path}")
    report = AlertReport(sources=[str(p) for p in paths])
    for path in paths:
        name = str(path)
        number = 0
        try:
            for number, line in numbered_lines(path, progress):
                if not line.strip():
                    continue
                try:
                    raw = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    report.add_bad(number, f"invalid JSON: {exc.msg.split(':')[0]}", file=name)
                    continue
                try:
                    alert = parse_wazuh_alert(raw)
                except CasefoldError as exc:
                    report.add_bad(number, str(exc), file=name)
                    continue
                if not _in_window(alert.time_utc, since, until):
                    report.outside_window += 1
                    continue
                report.add(alert)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            report.add_bad(number + 1, f"cannot read further: {exc}", file=name)
    return report


def _from_normalized(d: Mapping[str, Any]) -> NormalizedAlert:
    """The fields the report reads, from the JSON intake stored (observables are not needed)."""
    return NormalizedAlert(
        source=d["source"],
        source_id=d["source_id"],
        node=d["node"],
        time_original=d.get("time_original", ""),
        time_utc=datetime.fromisoformat(str(d["time_utc"]).replace("Z", "+00:00")),
        title=d.get("title") or "",
        level=int(d["level"]),
        rule_id=d.get("rule_id"),
        groups=list(d.get("groups") or ()),
        mitre_ids=list(d.get("mitre_ids") or ()),
        tactics=list(d.get("tactics") or ()),
        techniques=list(d.get("techniques") or ()),
        agent_id=d.get("agent_id"),
        agent_name=d.get("agent_name"),
    )


def report_from_store(
    conn: Connection, *, since: datetime | None = None, until: datetime | None = None
) -> AlertReport:
    """Report over the stored alerts (since inclusive, until exclusive, on the alert's time)."""
    report = AlertReport(sources=["store"])
    conds = []
    # The column holds naive UTC on SQLite: compare in UTC whatever zone the caller used.
    if since is not None:
        conds.append(alerts.c.time_utc >= since.astimezone(UTC))
    if until is not None:
        conds.append(alerts.c.time_utc < until.astimezone(UTC))
    last_id = 0
    while True:
        # Keyset pages by id: constant memory and no OFFSET rescans on a large table.
        rows = conn.execute(
            select(alerts.c.id, alerts.c.source, alerts.c.normalized, alerts.c.raw)
            .where(alerts.c.id > last_id, *conds)
            .order_by(alerts.c.id)
            .limit(STORE_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            doc = row.normalized
            if doc is None:  # not folded yet: stored by file intake with its header only
                doc = complete_view(row.source, None, orjson.loads(row.raw))
            try:
                report.add(_from_normalized(doc if isinstance(doc, dict) else orjson.loads(doc)))
            except (KeyError, TypeError, ValueError) as exc:  # a row an older version wrote
                report.add_bad(row.id, f"alert {row.id}: unreadable normalized JSON: {exc}")
        last_id = rows[-1].id
    return report
