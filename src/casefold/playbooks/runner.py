"""Executing one run of a playbook in memory: the graph, skips, for_each, retries, delays.

The runner knows nothing of the database. It is given the steps already recorded for this run
(a resumed run never repeats them), executes what can run now, and returns new step records, the
case effects to apply, and whether the run finished, failed or waits (start_delay, retry backoff).
The engine persists all of that in one transaction; `casefold playbook test` prints it instead.

Scheduling follows Tracecat: a step runs when its dependencies allow it (`a` / `a.success` need a
success, `a.error` needs a failure; `join_strategy: all` needs every edge, `any` one of them),
otherwise it is skipped and the skip propagates; a falsy `run_if` skips it; skipped steps are
absent from ACTIONS, except a step its action skipped itself (StepSkipped: a spent lookup budget),
which keeps its result and lets its dependents run. A failure with no `.error` edge to handle it
fails the run; independent branches still run so the trace shows everything that could be done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY, ActionRegistry, StepSkipped
from casefold.expressions import Budget, ExpressionError
from casefold.playbooks.model import ActionStep, Playbook

SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
WAITING = "waiting"  # delayed start or retry backoff: `due` says when
DONE = (SUCCEEDED, FAILED, SKIPPED)


@dataclass
class StepRecord:
    ref: str
    action: str
    status: str
    attempts: int = 0
    started_at: datetime | None = None
    duration_ms: int | None = None
    input: Any = None
    result: Any = None
    error: str | None = None
    reason: str | None = None
    due: datetime | None = None  # for WAITING


@dataclass
class RunOutcome:
    status: str  # succeeded, failed or waiting
    records: dict[str, StepRecord]  # every step's latest record (new or given)
    changed: list[str] = field(default_factory=list)  # refs whose record is new or updated
    not_before: datetime | None = None
    error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rec in self.records.values():
            out[rec.status] = out.get(rec.status, 0) + 1
        return out


class _Retryable(Exception):
    pass


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ExpressionError):
        return False
    flag = getattr(exc, "retryable", None)
    if flag is not None:
        return bool(flag)
    # Network trouble is worth another attempt; a bad argument is not.
    name = type(exc).__name__
    return name.endswith(
        (
            "TimeoutException",
            "ConnectError",
            "ReadError",
            "WriteError",
            "RemoteProtocolError",
            "ConnectTimeout",
            "ReadTimeout",
            "PoolTimeout",
        )
    )


def redact(value: Any, secrets: list[str]) -> Any:
    """Replace every occurrence of a secret in strings (keys too) with ***."""
    if not secrets or value is None:
        return value
    # One C-speed scan of the serialised value first: almost always no secret is in it, and then
    # the value is returned untouched instead of being walked and copied.
    secrets = [s for s in secrets if len(s) >= 4]  # shorter ones would mask ordinary text
    blob = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    # Inside JSON a secret appears escaped (quotes, backslashes, control characters): look for
    # that form.
    if not any(orjson.dumps(s)[1:-1] in blob for s in secrets):
        return value
    return _redact(value, secrets)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for s in secrets:
            if s and s in value:
                value = value.replace(s, "***")
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value


def _soft_skip(rec: StepRecord) -> bool:
    """A step the action itself skipped (budget spent): it has a result and the run goes on."""
    return rec.status == SKIPPED and rec.result is not None


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 2000 else text[:2000] + "…"


class Runner:
    def __init__(
        self,
        registry: ActionRegistry = REGISTRY,
        budget: Budget | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = registry
        self.budget = budget or Budget()
        self.clock = clock or (lambda: datetime.now(UTC))

    def execute(
        self,
        playbook: Playbook,
        base_context: Mapping[str, Any],
        done: Mapping[str, StepRecord],
        actx: ActionContext,
        *,
        secret_values: list[str] | None = None,
        checkpoint: Callable[[dict[str, StepRecord]], None] | None = None,
    ) -> RunOutcome:
        """Run what can run now. `base_context` holds TRIGGER, SECRETS, VARS and ENV."""
        secrets = sorted({s for s in (secret_values or []) if len(s) >= 4}, key=len, reverse=True)
        records: dict[str, StepRecord] = dict(done)
        changed: list[str] = []
        actions_ctx: dict[str, dict[str, Any]] = {}
        for ref, rec in records.items():
            if rec.status == SUCCEEDED or _soft_skip(rec):
                actions_ctx[ref] = {"result": rec.result, "error": None}
            elif rec.status == FAILED:
                actions_ctx[ref] = {"result": None, "error": rec.error}
        context = {**base_context, "ACTIONS": actions_ctx}
        waiting: list[datetime] = []
        now = self.clock()
        for step in playbook.steps:
            prev = records.get(step.ref)
            if prev is not None and prev.status in DONE:
                continue
            if prev is not None and prev.status == WAITING and prev.due and prev.due > now:
                waiting.append(prev.due)
                continue
            blocked = self._blocked(step, records)
            if blocked == "wait":
                continue  # a dependency is itself waiting
            if blocked:
                records[step.ref] = StepRecord(step.ref, step.action, SKIPPED, reason=blocked)
                changed.append(step.ref)
                continue
            if step.run_if is not None:
                try:
                    go = self._evaluate(step.run_if, context)
                except ExpressionError as exc:
                    records[step.ref] = StepRecord(
                        step.ref, step.action, FAILED, error=f"run_if: {exc}", started_at=now
                    )
                    actions_ctx[step.ref] = {"result": None, "error": f"run_if: {exc}"}
                    changed.append(step.ref)
                    continue
                if not go:
                    records[step.ref] = StepRecord(
                        step.ref, step.action, SKIPPED, reason="run_if was false"
                    )
                    changed.append(step.ref)
                    continue
            if step.start_delay and prev is None:
                due = now + step.start_delay
                records[step.ref] = StepRecord(
                    step.ref,
                    step.action,
                    WAITING,
                    due=due,
                    reason=f"start_delay {step.start_delay}",
                )
                changed.append(step.ref)
                waiting.append(due)
                continue
            rec = self._run_step(step, context, actx, prev, secrets)
            records[step.ref] = rec
            changed.append(step.ref)
            if rec.status == SUCCEEDED or _soft_skip(rec):
                actions_ctx[step.ref] = {"result": rec.result, "error": None}
            elif rec.status == FAILED:
                actions_ctx[step.ref] = {"result": None, "error": rec.error}
            elif rec.status == WAITING and rec.due:
                waiting.append(rec.due)
            if actx.called_out and checkpoint is not None:
                # The step reached another system: have it recorded now, before going on.
                actx.called_out = False
                checkpoint(records)
        unhandled = [
            r.ref
            for r in records.values()
            if r.status == FAILED
            and not any(e.ref == r.ref and e.on_error for s in playbook.steps for e in s.depends_on)
        ]
        if waiting:
            status, not_before = WAITING, min(waiting)
        elif unhandled:
            status, not_before = FAILED, None
        else:
            status, not_before = SUCCEEDED, None
        error = None
        if status == FAILED:
            first = records[unhandled[0]]
            error = f"step {first.ref} failed: {first.error}"
        return RunOutcome(status, records, changed, not_before, error)

    @staticmethod
    def _blocked(step: ActionStep, records: Mapping[str, StepRecord]) -> str | None:
        """None if the step may run, 'wait' if a dependency has not finished, else why skipped."""
        if not step.depends_on:
            return None
        satisfied = 0
        reasons = []
        for edge in step.depends_on:
            dep = records.get(edge.ref)
            if dep is None or dep.status == WAITING:
                return "wait"
            if (dep.status == SUCCEEDED or _soft_skip(dep)) and not edge.on_error:
                satisfied += 1
            elif dep.status == FAILED and edge.on_error:
                satisfied += 1
            elif dep.status == SKIPPED:
                reasons.append(f"{edge.ref} was skipped")
            elif edge.on_error:
                reasons.append(f"{edge.ref} succeeded (this step handles its error)")
            else:
                reasons.append(f"{edge.ref} failed")
        if step.join_any:
            return None if satisfied else "; ".join(reasons)
        return None if satisfied == len(step.depends_on) else "; ".join(reasons)

    def _evaluate(self, expr: Any, context: Mapping[str, Any]) -> Any:
        if hasattr(expr, "evaluate"):
            return expr.evaluate(context, budget=self.budget)
        return expr.render(context, budget=self.budget)

    def _run_step(
        self,
        step: ActionStep,
        context: dict[str, Any],
        actx: ActionContext,
        prev: StepRecord | None,
        secrets: list[str],
    ) -> StepRecord:
        spec = self.registry.resolve(step.action)
        attempt = (prev.attempts if prev else 0) + 1
        started = self.clock()
        t0 = time.perf_counter()
        rendered: Any = None
        try:
            if spec is None:
                raise LookupError(f"unknown action {step.action!r}")
            actx.timeout = step.retry.timeout
            if step.for_each:
                iterations = self._iterations(step, context)
                rendered = []
                result: Any = []
                for var in iterations:
                    item_ctx = {**context, "var": {**context.get("var", {}), **var}}
                    args = step.args.render(item_ctx, budget=self.budget)
                    rendered.append(args)
                    result.append(spec.handler(dict(args), actx))
            else:
                rendered = step.args.render(context, budget=self.budget)
                result = spec.handler(dict(rendered), actx)
        except StepSkipped as skip:
            return self._record(
                step,
                SKIPPED,
                attempt,
                started,
                t0,
                rendered,
                secrets,
                result=redact(skip.result, secrets),
                reason=f"skipped: {skip.reason}",
            )
        except Exception as exc:  # any failure of the action becomes the step's error
            record = self._record(
                step,
                FAILED,
                attempt,
                started,
                t0,
                rendered,
                secrets,
                error=redact(_error_text(exc), secrets),
            )
            if _is_retryable(exc) and attempt < step.retry.max_attempts:
                record.status = WAITING
                record.due = self.clock() + timedelta(seconds=step.retry.delay(attempt))
                record.reason = f"retry {attempt + 1}/{step.retry.max_attempts}"
            return record
        return self._record(
            step, SUCCEEDED, attempt, started, t0, rendered, secrets, result=redact(result, secrets)
        )

    @staticmethod
    def _record(
        step: ActionStep,
        status: str,
        attempt: int,
        started: datetime,
        t0: float,
        rendered: Any,
        secrets: list[str],
        **outcome: Any,
    ) -> StepRecord:
        """A step's record after an attempt: its input masked, its duration measured."""
        return StepRecord(
            step.ref,
            step.action,
            status,
            attempts=attempt,
            started_at=started,
            duration_ms=int((time.perf_counter() - t0) * 1000),
            input=redact(rendered, secrets),
            **outcome,
        )

    def _iterations(self, step: ActionStep, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        columns = []
        for name, expr in step.for_each:
            values = expr.evaluate(context, budget=self.budget)
            if values is None:
                values = []
            if not isinstance(values, list | tuple):
                raise ExpressionError(f"for_each over var.{name} needs a list")
            columns.append((name, list(values)))
        if not columns:
            return []
        length = min(len(v) for _, v in columns)  # zipped, like Tracecat
        return [{name: values[i] for name, values in columns} for i in range(length)]
