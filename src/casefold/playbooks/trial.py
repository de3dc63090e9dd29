"""Trying playbooks without side effects: one alert (`casefold playbook test`) or a whole
alerts.json (`casefold replay --dry-run`).

Nothing here opens the store. Folding is decided in memory with the configured rules; playbooks
run through the real `Runner` with a dry-run `ActionContext`, so case changes are collected as
descriptions and never applied, and HTTP requests are described instead of sent (unless `live`).

The case a folded alert belongs to does not exist yet, so it is stood in for by case id 0
(`CASE-0`): an id the store never hands out, and one that case actions accept as an argument,
so a playbook passing `TRIGGER.case.id` or `ACTIONS.create_case.result.id` on runs as it would.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

import casefold.actions.cases  # noqa: F401 - registers the cases.* actions
import casefold.actions.core  # noqa: F401 - registers the core.* actions
import casefold.actions.cti  # noqa: F401 - registers the cti.* actions
import casefold.actions.outbound  # noqa: F401 - registers webhook.post
import casefold.actions.response  # noqa: F401 - registers firewall.* and wazuh.active_response
import casefold.actions.wazuh  # noqa: F401 - registers the wazuh.* actions
from casefold.actions.context import ActionContext
from casefold.cases.model import case_ref, higher_severity, severity_for_level
from casefold.connectors.netguard import URLGuard
from casefold.enrichment.providers import build_enricher
from casefold.enrichment.service import Enricher
from casefold.errors import CasefoldError
from casefold.expressions import ExpressionError
from casefold.folding.apply import render_summary
from casefold.folding.rules import FoldDecision, FoldRule, choose, join_reason, load_rules
from casefold.playbooks.engine import ENV_CONTEXT, trigger_context
from casefold.playbooks.library import PlaybookLibrary
from casefold.playbooks.model import Playbook, Trigger
from casefold.playbooks.runner import SUCCEEDED, WAITING, Runner, StepRecord, redact
from casefold.sources.alert_files import numbered_lines
from casefold.sources.model import NormalizedAlert
from casefold.sources.wazuh import parse_wazuh_alert

STAND_IN_CASE_ID = 0  # the would-be case: never a stored case's id
MAX_ROUNDS = 100  # runner rounds (delays and retries are fast-forwarded, not waited for)
MIN_SECRET_LENGTH = 4  # as the runner: shorter values would mask ordinary text

# Trace statuses besides the runner's succeeded / failed / waiting.
NOT_MATCHED = "not_matched"
TRIGGER_ERROR = "trigger_error"


# -- shared pieces -------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """JSON-ready copy: datetimes become ISO text, other unknown objects their text."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _evaluate(expr: Any, context: Mapping[str, Any]) -> Any:
    # As PlaybookEngine.enqueue evaluates trigger.if: expressions evaluate, templates render.
    if hasattr(expr, "evaluate"):
        return expr.evaluate(context)
    return expr.render(context)


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "none"


def _static_mismatch(trigger: Trigger, alert: Mapping[str, Any]) -> str | None:
    """Why the trigger's filters refuse the normalised alert, or None when they accept it."""
    source = alert.get("source")
    if trigger.sources and source not in trigger.sources:
        return f"source {source!r} is not {_names(trigger.sources)}"
    level = alert.get("level") or 0
    if not trigger.min_level <= level <= trigger.max_level:
        return f"level {level} is outside {trigger.min_level}..{trigger.max_level}"
    rule_id = alert.get("rule_id")
    if trigger.rule_ids and rule_id not in trigger.rule_ids:
        return f"rule {rule_id} is not one of {_names(trigger.rule_ids)}"
    groups = alert.get("groups") or ()
    if trigger.groups and trigger.groups.isdisjoint(groups):
        return (
            f"none of the alert's groups ({_names(groups)}) is in trigger.groups "
            f"({_names(trigger.groups)})"
        )
    if not trigger.matches_static(dict(alert)):  # a filter this explanation does not know yet
        return "the trigger's filters do not accept this alert"
    return None


def _filters(trigger: Trigger) -> str:
    parts = []
    if trigger.sources:
        parts.append(f"source {_names(trigger.sources)}")
    if trigger.groups:
        parts.append(f"groups {_names(trigger.groups)}")
    if trigger.rule_ids:
        parts.append(f"rules {_names(trigger.rule_ids)}")
    if (trigger.min_level, trigger.max_level) != (0, 99):
        parts.append(f"level {trigger.min_level}..{trigger.max_level}")
    if trigger.condition is not None:
        parts.append("if: true")
    return "; ".join(parts) or "no filters"


def check_trigger(
    playbook: Playbook, normalized: Mapping[str, Any], condition_context: Mapping[str, Any]
) -> tuple[bool, str, bool]:
    """(matched, reason, failed): the static filters, then trigger.if as the engine runs it."""
    why_not = _static_mismatch(playbook.trigger, normalized)
    if why_not is not None:
        return False, why_not, False
    if playbook.trigger.condition is not None:
        try:
            ok = _evaluate(playbook.trigger.condition, condition_context)
        except ExpressionError as exc:
            return False, f"trigger.if failed: {exc}", True
        if not ok:
            return False, "trigger.if is false for this alert", False
    return True, f"every filter passes ({_filters(playbook.trigger)})", False


def effect_kind(description: str) -> str:
    """`update CASE-3: priority` → `update: priority`; `comment on CASE-3` → `comment`."""
    for prefix in ("open a new case", "open or join the case of key"):
        if description.startswith(prefix):
            return prefix
    text = re.sub(r"\s*\b(?:to|on)\s+CASE-\d+\b", "", description)
    text = re.sub(r"\s*\bCASE-\d+\b", "", text)
    return " ".join(text.split()) or description


class _Clock:
    """The runner's clock; moved forward past start delays and retry backoffs."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class _HTTPLog:
    """Every request a live trial really sends (the CTI connector does not trace its own)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._by_request: dict[int, dict[str, Any]] = {}

    def on_request(self, request: httpx.Request) -> None:
        entry = {
            "method": request.method,
            "url": str(request.url),
            "sent": True,
            "status_code": None,
        }
        self.entries.append(entry)
        self._by_request[id(request)] = entry

    def on_response(self, response: httpx.Response) -> None:
        entry = self._by_request.pop(id(response.request), None)
        if entry is not None:
            entry["status_code"] = response.status_code


@dataclass
class _Setup:
    """What every trial of one invocation shares: settings, secrets, the runner."""

    settings: Any
    live: bool = False
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    secret_list: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    guard: Callable[[str], None] | None = None
    # Offline trials share one enricher (cache in memory, local lists loaded once); live
    # trials get their own, wired to the trial's logging HTTP client.
    enricher: Enricher | None = None

    @classmethod
    def of(cls, settings: Any, live: bool) -> _Setup:
        secrets = settings.secret_values()
        values = {v for keys in secrets.values() for v in keys.values() if v}
        return cls(
            settings=settings,
            live=live,
            secrets=secrets,
            secret_list=sorted(
                (v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True
            ),
            variables=dict(settings.vars),
            guard=URLGuard(settings.http_allow_networks).check,
            enricher=None if live else build_enricher(settings, secrets, httpx.Client()),
        )

    def mask(self, value: Any) -> Any:
        return redact(value, self.secret_list)


# -- one playbook, one alert ----------------------------------------------------------------------


@dataclass
class StepTrace:
    ref: str
    action: str
    status: str
    attempts: int
    duration_ms: int | None
    input: Any
    result: Any
    error: str | None
    reason: str | None
    notes: list[str] = field(default_factory=list)  # delays and retries that were fast-forwarded

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "action": self.action,
            "status": self.status,
            "attempts": self.attempts,
            "duration_ms": self.duration_ms,
            "input": self.input,
            "result": self.result,
            "error": self.error,
            "reason": self.reason,
            "notes": list(self.notes),
        }


@dataclass
class Trace:
    """What one trial did and would have done. Everything in it is JSON-ready and masked."""

    playbook: dict[str, Any]
    alert: dict[str, Any]
    case: dict[str, Any] | None  # the case folding would put the alert in, None if no rule
    matched: bool
    reason: str
    status: str  # succeeded, failed, waiting, not_matched or trigger_error
    error: str | None = None
    steps: list[StepTrace] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)  # case changes that would happen
    http: list[dict[str, Any]] = field(default_factory=list)
    live: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (SUCCEEDED, NOT_MATCHED)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s.status for s in self.steps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "alert": self.alert,
            "case": self.case,
            "trigger": {"matched": self.matched, "reason": self.reason},
            "status": self.status,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
            "effects": list(self.effects),
            "http": list(self.http),
            "live": self.live,
        }


def _playbook_info(playbook: Playbook) -> dict[str, Any]:
    return {
        "name": playbook.name,
        "title": playbook.title,
        "path": playbook.path,
        "version": playbook.version,
        "actions": len(playbook.steps),
    }


def _alert_info(alert: NormalizedAlert) -> dict[str, Any]:
    return {
        "source": alert.source,
        "node": alert.node,
        "id": alert.source_id,
        "time": _iso(alert.time_utc),
        "rule_id": alert.rule_id,
        "level": alert.level,
        "title": alert.title,
        "agent": alert.agent_name or alert.agent_id,
    }


def _case_info(decision: FoldDecision | None, alert: NormalizedAlert, opened: bool) -> Any:
    if decision is None:
        return None
    return {
        "id": STAND_IN_CASE_ID,
        "ref": case_ref(STAND_IN_CASE_ID),
        "opened_by_alert": opened,
        "rule": decision.rule.name,
        "key": decision.key,
        "summary": render_summary(decision.rule, decision.key, alert),
    }


def _planned(actx: ActionContext) -> list[str]:
    """The case changes the actions asked for, in words (deferred effects and case operations)."""
    planned = getattr(actx, "planned_changes", None)
    if callable(planned):
        return [str(d) for d in planned()]
    return [desc for desc, _effect in actx.effects]


def _synthesized_effects(steps: list[StepTrace]) -> list[str]:
    """Dry-run case actions that open a case say so only in their result; describe them."""
    out = []
    for s in steps:
        if s.status != SUCCEEDED or not isinstance(s.result, dict) or not s.result.get("dry_run"):
            continue
        if s.action == "cases.create_case":
            out.append(f"open a new case: {s.result.get('summary', '')}".rstrip(": "))
        elif s.action == "cases.upsert_case":
            out.append(f"open or join the case of key {s.result.get('key')}")
    return out


def _execute(
    setup: _Setup,
    playbook: Playbook,
    raw: Any,
    alert: NormalizedAlert,
    decision: FoldDecision | None,
    opened: bool,
    *,
    force: bool = False,
) -> Trace:
    normalized = alert.to_dict()
    case_id = STAND_IN_CASE_ID if decision is not None else None
    trigger = trigger_context(raw, normalized, None, opened)
    if case_id is not None:  # trigger_context reads a case id of 0 as "no case"
        trigger["case"] = {"id": case_id, "ref": case_ref(case_id), "opened_by_alert": opened}
    # trigger.if sees what PlaybookEngine.enqueue gives it: TRIGGER and VARS, nothing else.
    matched, reason, trigger_failed = check_trigger(
        playbook, normalized, {"TRIGGER": trigger, "VARS": setup.variables}
    )
    trace = Trace(
        playbook=_playbook_info(playbook),
        alert=_alert_info(alert),
        case=_case_info(decision, alert, opened),
        matched=matched,
        reason=reason,
        status=SUCCEEDED if matched else (TRIGGER_ERROR if trigger_failed else NOT_MATCHED),
        error=reason if trigger_failed else None,
        live=setup.live,
    )
    if not matched and not force:
        return _masked(setup, trace)
    context = {
        "TRIGGER": trigger,
        "SECRETS": setup.secrets,
        "VARS": setup.variables,
        "ENV": ENV_CONTEXT,
        "var": {},
    }
    log = _HTTPLog()
    client = (
        httpx.Client(
            timeout=30.0,
            event_hooks={"request": [log.on_request], "response": [log.on_response]},
        )
        if setup.live
        else None
    )
    actx = ActionContext(
        playbook=playbook.name,
        run_id=None,
        alert_id=None,
        case_id=case_id,
        case_opened_by_alert=opened,
        engine=None,
        run_now=None,
        secrets=setup.secrets,
        http_client=client,
        http_allow=setup.guard,
        dry_run=True,
        live=setup.live,
        settings=setup.settings,
        enricher=setup.enricher
        if client is None
        else build_enricher(setup.settings, setup.secrets, client),
        alert=normalized,
        wazuh=None,  # a trial never sends events into Wazuh, even with --live
    )
    clock = _Clock()
    runner = Runner(clock=clock)
    records: dict[str, StepRecord] = {}
    notes: dict[str, list[str]] = {}
    try:
        for _ in range(MAX_ROUNDS):
            outcome = runner.execute(
                playbook, context, records, actx, secret_values=setup.secret_list
            )
            records = outcome.records
            for ref in outcome.changed:
                rec = records[ref]
                if rec.status == WAITING and rec.reason:
                    what = rec.reason + (f" after: {rec.error}" if rec.error else "")
                    notes.setdefault(ref, []).append(f"{what} (not waited for)")
            if outcome.status != WAITING or outcome.not_before is None:
                break
            clock.now = max(clock.now, outcome.not_before) + timedelta(microseconds=1)
    finally:
        if client is not None:
            client.close()
    trace.status = outcome.status
    trace.error = outcome.error
    if outcome.status == WAITING:
        trace.error = f"still waiting after {MAX_ROUNDS} rounds of delays and retries"
    for step in playbook.steps:
        rec = records.get(step.ref)
        if rec is None:
            continue
        trace.steps.append(
            StepTrace(
                ref=rec.ref,
                action=rec.action,
                status=rec.status,
                attempts=rec.attempts,
                duration_ms=rec.duration_ms,
                input=_jsonable(rec.input),
                result=_jsonable(rec.result),
                error=rec.error,
                reason=rec.reason,
                notes=notes.get(rec.ref, []),
            )
        )
    trace.effects = _planned(actx) + _synthesized_effects(trace.steps)
    trace.http = log.entries if setup.live else _jsonable(actx.http_trace)
    return _masked(setup, trace)


def _masked(setup: _Setup, trace: Trace) -> Trace:
    """Secrets out of every text of the trace (the runner already masked inputs and results)."""
    m = setup.mask
    trace.playbook = m(trace.playbook)
    trace.alert = m(trace.alert)
    trace.case = m(trace.case)
    trace.reason = m(trace.reason)
    trace.error = m(trace.error)
    for s in trace.steps:
        s.input, s.result, s.error, s.reason = m(s.input), m(s.result), m(s.error), m(s.reason)
        s.notes = m(s.notes)
    trace.effects = m(trace.effects)
    trace.http = m(trace.http)
    return trace


def trial_run(
    playbook: Playbook,
    alert_doc: Any,
    *,
    settings: Any,
    live: bool = False,
    force: bool = False,
) -> Trace:
    """Run `playbook` against one Wazuh alert without changing anything.

    Raises InvalidAlertError for an unusable alert and ConfigError for bad folding rules.
    `live` sends the HTTP requests (lookups) for real; case changes are still only described.
    `force` runs the steps even when the trigger does not match.
    """
    alert = parse_wazuh_alert(alert_doc)
    rules = load_rules(settings.folding_rules)
    decision = choose(rules, alert, alert_doc)
    # No store, no open cases: a folded alert is taken to open its case, as the first would.
    return _execute(
        _Setup.of(settings, live), playbook, alert_doc, alert, decision, True, force=force
    )


# -- replaying alerts.json ------------------------------------------------------------------------


@dataclass
class _WouldBeCase:
    rule: FoldRule
    key: str
    summary: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    opened_at: str  # file:line
    alerts: int = 0
    last_join: str | None = None
    closed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "key": self.key,
            "summary": self.summary,
            "severity": self.severity,
            "alerts": self.alerts,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "opened_at": self.opened_at,
            "last_join": self.last_join,
            "closed": self.closed,
        }


class _Folding:
    """Folding in memory, alert after alert, with the store's rules: join the open case of the
    (rule, key) slot while the alert is within `window` of its last alert and the case holds
    fewer than `max_alerts`; otherwise close that slot and open a new case."""

    def __init__(self, rules: list[FoldRule]) -> None:
        self.rules = rules
        self.open: dict[tuple[str, str], _WouldBeCase] = {}
        self.cases: list[_WouldBeCase] = []
        self.unmatched = 0
        self.merges = 0
        self.closed = 0

    @staticmethod
    def _accepts(case: _WouldBeCase, alert: NormalizedAlert) -> bool:
        if case.alerts >= case.rule.max_alerts:
            return False
        return alert.time_utc - case.last_seen <= case.rule.window

    def fold(
        self, alert: NormalizedAlert, raw: Any, where: str
    ) -> tuple[FoldDecision | None, bool, str | None]:
        """(decision, opened a case, join reason) for the next alert."""
        decision = choose(self.rules, alert, raw)
        if decision is None:
            self.unmatched += 1
            return None, False, None
        slot = (decision.rule.name, decision.key)
        case = self.open.get(slot)
        if case is not None and not self._accepts(case, alert):
            rule = decision.rule
            case.closed = "stopped taking alerts: " + (
                f"reached its maximum of {rule.max_alerts} alerts"
                if case.alerts >= rule.max_alerts
                else f"no alert for key {decision.key} within {rule.window}"
            )
            self.closed += 1
            case = None
        if case is None:
            case = _WouldBeCase(
                rule=decision.rule,
                key=decision.key,
                summary=render_summary(decision.rule, decision.key, alert),
                severity=severity_for_level(alert.level),
                first_seen=alert.time_utc,
                last_seen=alert.time_utc,
                opened_at=where,
            )
            self.open[slot] = case
            self.cases.append(case)
        opened = case.alerts == 0
        reason = None
        if not opened:
            self.merges += 1
            span = abs((alert.time_utc - case.first_seen).total_seconds())
            reason = join_reason(decision, case.alerts + 1, span)
            case.last_join = reason
        case.alerts += 1
        case.first_seen = min(case.first_seen, alert.time_utc)
        case.last_seen = max(case.last_seen, alert.time_utc)
        case.severity = higher_severity(case.severity, severity_for_level(alert.level))
        return decision, opened, reason


MAX_LISTED = 1000  # bad lines and joins listed in the report; the counts are always whole
DEDUP_NOTE = (
    "alerts with the same source, node and id as an earlier one are skipped, as intake does"
)


@dataclass
class ReplayReport:
    files: list[str]
    lines: int = 0  # non-empty lines read
    alerts: int = 0  # lines that are alerts (duplicates included)
    duplicates: int = 0
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    bad_line_count: int = 0
    cases: list[dict[str, Any]] = field(default_factory=list)
    merges: int = 0
    joins: list[dict[str, Any]] = field(default_factory=list)
    unmatched: int = 0
    closed: int = 0
    runs: dict[str, dict[str, int]] = field(default_factory=dict)  # playbook → status → n
    steps: dict[str, dict[str, int]] = field(default_factory=dict)  # playbook → status → n
    effects: dict[str, int] = field(default_factory=dict)  # kind → n
    http: dict[str, int] = field(default_factory=dict)  # "GET https://host" → n
    errors: dict[str, dict[str, int]] = field(default_factory=dict)  # playbook → error → n
    playbook_problems: list[str] = field(default_factory=list)
    dry_run: bool = True

    @property
    def unique(self) -> int:
        return self.alerts - self.duplicates

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "files": list(self.files),
            "lines": self.lines,
            "alerts": self.alerts,
            "duplicates": self.duplicates,
            "unique_alerts": self.unique,
            "dedup": DEDUP_NOTE,
            "bad_line_count": self.bad_line_count,
            "bad_lines": list(self.bad_lines),
            "cases": list(self.cases),
            "merges": self.merges,
            "joins": list(self.joins),
            "unmatched": self.unmatched,
            "closed_slots": self.closed,
            "playbook_runs": self.runs,
            "steps": self.steps,
            "errors": self.errors,
            "effects": self.effects,
            "http": self.http,
            "playbook_problems": list(self.playbook_problems),
        }


def _bump(table: dict[str, int], key: str, n: int = 1) -> None:
    table[key] = table.get(key, 0) + n


def _target(entry: Mapping[str, Any]) -> str:
    parts = urlsplit(str(entry.get("url", "")))
    return f"{entry.get('method', 'GET')} {parts.scheme}://{parts.netloc}"


def replay(
    paths: Iterable[Path],
    *,
    settings: Any,
    dry_run: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Fold and trial-run the alerts of alerts.json files in memory; the store is never opened.

    Raises ConfigError for bad folding rules or unknown bundled playbooks; a bad line is counted
    (with its file:line) and skipped; an unreadable file is reported like a bad line.
    """
    if not dry_run:
        raise CasefoldError("only --dry-run replays are supported")
    paths = [Path(p) for p in paths]
    report = ReplayReport(files=[str(p) for p in paths], dry_run=True)
    folding = _Folding(load_rules(settings.folding_rules))
    library = PlaybookLibrary(settings.playbooks_path, bundled=tuple(settings.bundled_playbooks))
    library.load()
    playbooks = library.all()
    report.playbook_problems = [str(p) for problems in library.errors.values() for p in problems]
    setup = _Setup.of(settings, live=False)
    seen: set[str] = set()

    def bad(where: str, path: Path, line: int, error: str) -> None:
        report.bad_line_count += 1
        if len(report.bad_lines) < MAX_LISTED:
            report.bad_lines.append(
                {"position": where, "file": str(path), "line": line, "error": error}
            )

    for path in paths:
        number = 0
        try:
            for number, line in numbered_lines(path, progress):
                if not line.strip():
                    continue
                report.lines += 1
                where = f"{path}:{number}"
                try:
                    raw = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    bad(where, path, number, f"invalid JSON: {exc.msg.split(':')[0]}")
                    continue
                try:
                    alert = parse_wazuh_alert(raw)
                except CasefoldError as exc:
                    bad(where, path, number, str(exc))
                    continue
                report.alerts += 1
                if alert.dedup_key in seen:
                    report.duplicates += 1
                    continue
                seen.add(alert.dedup_key)
                decision, opened, reason = folding.fold(alert, raw, where)
                if reason is not None and len(report.joins) < MAX_LISTED:
                    report.joins.append({"position": where, "reason": reason})
                for pb in playbooks:
                    _replay_one(report, setup, pb, raw, alert, decision, opened)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            bad(f"{path}:{number + 1}", path, number + 1, f"cannot read further: {exc}")
    report.cases = [c.to_dict() for c in folding.cases]
    report.merges = folding.merges
    report.unmatched = folding.unmatched
    report.closed = folding.closed
    return report


def _replay_one(
    report: ReplayReport,
    setup: _Setup,
    playbook: Playbook,
    raw: Any,
    alert: NormalizedAlert,
    decision: FoldDecision | None,
    opened: bool,
) -> None:
    trace = _execute(setup, playbook, raw, alert, decision, opened)
    if trace.status == NOT_MATCHED:
        return
    runs = report.runs.setdefault(playbook.name, {})
    _bump(runs, trace.status)
    steps = report.steps.setdefault(playbook.name, {})
    for status, n in trace.counts.items():
        _bump(steps, status, n)
    if trace.error:
        errors = report.errors.setdefault(playbook.name, {})
        _bump(errors, trace.error if trace.error in errors or len(errors) < 100 else "(others)")
    for desc in trace.effects:
        _bump(report.effects, effect_kind(desc))
    for entry in trace.http:
        _bump(report.http, _target(entry))
