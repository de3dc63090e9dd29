"""Reading playbook files: YAML → validated, compiled `Playbook`, or errors with file and line.

Validation covers what Tracecat checks at publish time and more: unique refs, unknown refs (in
depends_on and in every `ACTIONS.<ref>` of every expression), cycles, unknown actions, unknown
argument names, unknown FN functions, malformed expressions (with their column). All problems of
a file are reported together, each as `file:line: reason`.
"""

from __future__ import annotations

import hashlib
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from casefold.actions.registry import REGISTRY, ActionRegistry
from casefold.errors import ConfigError
from casefold.expressions import (
    CompiledValue,
    Expression,
    ExpressionError,
    Template,
    compile_expression,
    compile_iterator,
    compile_template,
    compile_value,
)
from casefold.folding.rules import parse_duration
from casefold.playbooks.model import ActionStep, Edge, Playbook, RetryPolicy, Trigger

Evaluable = Expression | Template  # both have .references and evaluate/render to a value

_CURRENT_PATH: ContextVar[str] = ContextVar("playbook_path")

_REF = re.compile(r"^[a-z0-9_]+$")
_TOP_KEYS = {
    "title",
    "description",
    "trigger",
    "triggers",
    "actions",
    "enabled",
    "entrypoint",
    "config",
    "returns",
    "error_handler",
    "inputs",
}
_STEP_KEYS = {
    "ref",
    "action",
    "args",
    "depends_on",
    "run_if",
    "for_each",
    "retry_policy",
    "start_delay",
    "join_strategy",
    "description",
    "environment",
    "wait_until",
    "mask_output",
    "title",
    "id",
}
_TRIGGER_KEYS = {"source", "groups", "min_level", "max_level", "rule_ids", "if"}


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class PlaybookError(ConfigError):
    """A playbook file that cannot be loaded; `problems` lists every reason with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.path}:{first.line}", first.message + more)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class _Builder:
    def __init__(self, path: str, registry: ActionRegistry) -> None:
        self.path = path
        self.registry = registry
        self.problems: list[Problem] = []

    def fail(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def expr(self, value: Any, line: int, where: str) -> Evaluable | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return compile_expression("True" if value else "False")
        if not isinstance(value, str):
            self.fail(line, f"{where} must be an expression like ${{{{ … }}}}")
            return None
        try:
            if value.strip().startswith("${{"):
                template = compile_template(value.strip())
                if template.is_static:
                    raise ExpressionError("expected one ${{ … }} expression")
                return template  # renders typed: one template filling the string
            return compile_expression(value)
        except ExpressionError as exc:
            self.fail(line, f"{where}: {exc}")
            return None

    def value(self, value: Any, line: int, where: str) -> CompiledValue | None:
        try:
            return compile_value(value)
        except ExpressionError as exc:
            self.fail(line, f"{where}: {exc}")
            return None


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k not in ("__lines__", "__line__")}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _line(mapping: dict[str, Any], key: str, default: int) -> int:
    return int(mapping.get("__lines__", {}).get(key, default))


def _str_set(value: Any) -> frozenset[str] | None:
    if value is None:
        return frozenset()
    if isinstance(value, str | int):
        return frozenset([str(value)])
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return frozenset(str(v) for v in value)
    return None


def _compose(text: str, path: str) -> Any:
    _CURRENT_PATH.set(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise PlaybookError([Problem(path, line, f"not valid YAML: {reason}")]) from None
    if node is None:
        raise PlaybookError([Problem(path, 1, "the file is empty")])
    return _node_value(node)


def _node_value(node: yaml.Node) -> Any:
    """Plain values with a `__lines__` map on every mapping (key → line of its value)."""
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for k, v in node.value:
            key = _node_value(k)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise PlaybookError(
                    [
                        Problem(
                            _CURRENT_PATH.get(""),
                            k.start_mark.line + 1,
                            "mapping keys must be plain scalars",
                        )
                    ]
                )
            out[key] = _node_value(v)
            lines[key] = v.start_mark.line + 1
        out["__lines__"] = lines
        out["__line__"] = node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_node_value(v) for v in node.value]
    return yaml.SafeLoader("").construct_object(node, deep=True)


def parse_playbook(text: str, path: str, registry: ActionRegistry = REGISTRY) -> Playbook:
    """Validate and compile one playbook; raise PlaybookError listing every problem."""
    doc = _compose(text, path)
    b = _Builder(path, registry)
    if isinstance(doc, dict) and isinstance(doc.get("definition"), dict):
        doc = doc["definition"]  # a Tracecat export wraps the workflow in `definition:`
    if not isinstance(doc, dict):
        raise PlaybookError([Problem(path, 1, "a playbook is a mapping with title and actions")])
    for key in sorted(set(doc) - _TOP_KEYS - {"__lines__", "__line__", "layout", "definition"}):
        b.fail(_line(doc, key, 1), f"unknown key {key!r}")
    title = doc.get("title")
    if not isinstance(title, str) or not title.strip():
        b.fail(doc.get("__line__", 1), "title is required")
        title = Path(path).stem
    description = doc.get("description") or ""
    trigger = _trigger(b, doc.get("trigger"), _line(doc, "trigger", 1))
    steps = _steps(b, doc.get("actions"), _line(doc, "actions", 1))
    if b.problems:
        raise PlaybookError(b.problems)
    return Playbook(
        name=Path(path).stem,
        title=title,
        description=str(description),
        trigger=trigger,
        steps=tuple(steps),
        version=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        path=path,
        enabled=bool(doc.get("enabled", True)),
    )


def _trigger(b: _Builder, raw: Any, line: int) -> Trigger:
    if raw is None:
        return Trigger()
    if not isinstance(raw, dict):
        b.fail(
            line, "trigger must be a mapping (source, groups, min_level, max_level, rule_ids, if)"
        )
        return Trigger()
    for key in sorted(set(raw) - _TRIGGER_KEYS - {"__lines__", "__line__"}):
        b.fail(_line(raw, key, line), f"trigger: unknown key {key!r}")
    sets = {}
    for key in ("source", "groups", "rule_ids"):
        value = _str_set(raw.get(key))
        if value is None:
            b.fail(_line(raw, key, line), f"trigger.{key} must be a string or a list of strings")
            value = frozenset()
        sets[key] = value
    levels = {}
    for key, default in (("min_level", 0), ("max_level", 99)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            b.fail(_line(raw, key, line), f"trigger.{key} must be an integer")
            value = default
        levels[key] = value
    condition = b.expr(raw.get("if"), _line(raw, "if", line), "trigger.if")
    if condition is not None and condition.references.actions:
        b.fail(_line(raw, "if", line), "trigger.if runs before any action: it cannot use ACTIONS")
    return Trigger(
        sources=sets["source"],
        groups=sets["groups"],
        rule_ids=sets["rule_ids"],
        min_level=levels["min_level"],
        max_level=levels["max_level"],
        condition=condition,
    )


def _edges(b: _Builder, raw: Any, line: int, ref: str) -> list[Edge]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        b.fail(line, f"{ref}: depends_on must be a list of refs")
        return []
    edges = []
    for item in raw:
        if not isinstance(item, str):
            b.fail(line, f"{ref}: depends_on entries are refs like 'a', 'a.success' or 'a.error'")
            continue
        name, _, suffix = item.partition(".")
        if suffix not in ("", "success", "error"):
            b.fail(line, f"{ref}: depends_on {item!r}: the suffix must be .success or .error")
            continue
        edges.append(Edge(name, on_error=suffix == "error"))
    return edges


def _retry(b: _Builder, raw: Any, line: int, ref: str) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    if not isinstance(raw, dict):
        b.fail(line, f"{ref}: retry_policy must be a mapping")
        return RetryPolicy()
    values: dict[str, float] = {}
    for key, low, high in (
        ("max_attempts", 1, 20),
        ("backoff", 0, 3600),
        ("max_backoff", 0, 86400),
        ("timeout", 0.1, 3600),
    ):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
                b.fail(
                    _line(raw, key, line),
                    f"{ref}: retry_policy.{key} must be a number from {low} to {high}",
                )
                continue
            values[key] = v
    if raw.get("retry_until") is not None:
        b.fail(
            _line(raw, "retry_until", line),
            f"{ref}: retry_policy.retry_until is not supported; use max_attempts and backoff",
        )
    for key in sorted(
        set(raw)
        - {"retry_until"}
        - {
            "max_attempts",
            "backoff",
            "max_backoff",
            "timeout",
            "__lines__",
            "__line__",
        }
    ):
        b.fail(_line(raw, key, line), f"{ref}: retry_policy: unknown key {key!r}")
    return RetryPolicy(
        max_attempts=int(values.get("max_attempts", 1)),
        backoff=float(values.get("backoff", 1.0)),
        max_backoff=float(values.get("max_backoff", 300.0)),
        timeout=float(values.get("timeout", 30.0)),
    )


def _steps(b: _Builder, raw: Any, line: int) -> list[ActionStep]:
    if not isinstance(raw, list) or not raw:
        b.fail(line, "actions must be a non-empty list")
        return []
    steps: dict[str, ActionStep] = {}
    references: dict[str, tuple[int, set[str]]] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            b.fail(line, f"actions[{i}] must be a mapping")
            continue
        sline = item.get("__line__", line)
        ref = item.get("ref")
        if not isinstance(ref, str) or not _REF.match(ref):
            b.fail(sline, f"actions[{i}]: ref must match [a-z0-9_]+")
            continue
        if ref in steps:
            b.fail(sline, f"duplicate ref {ref!r}")
            continue
        for key in sorted(set(item) - _STEP_KEYS - {"__lines__", "__line__"}):
            b.fail(_line(item, key, sline), f"{ref}: unknown key {key!r}")
        action_name = item.get("action")
        spec = b.registry.resolve(action_name) if isinstance(action_name, str) else None
        if spec is None:
            b.fail(_line(item, "action", sline), f"{ref}: unknown action {action_name!r}")
        raw_args = item.get("args") or {}
        if not isinstance(raw_args, dict):
            b.fail(_line(item, "args", sline), f"{ref}: args must be a mapping")
            raw_args = {}
        args_line = _line(item, "args", sline)
        if spec is not None:
            given = {k for k in raw_args if k not in ("__lines__", "__line__")}
            problem = spec.check_args(given)
            if problem:
                unknown = sorted(given - spec.required - spec.optional)
                where = _line(raw_args, unknown[0], args_line) if unknown else args_line
                b.fail(where, f"{ref}: {spec.name}: {problem}")
        refs: set[str] = set()
        args_clean = _strip_lines(raw_args)
        before = len(b.problems)
        for key, value in args_clean.items():
            # Compile argument by argument so that an error names the argument's own line.
            cv = b.value(value, _line(raw_args, key, args_line), f"{ref}.args.{key}")
            if cv is not None:
                refs |= set(cv.references.actions)
        compiled_args = None
        if len(b.problems) == before:
            compiled_args = b.value(args_clean, args_line, f"{ref}.args")
        run_if = b.expr(item.get("run_if"), _line(item, "run_if", sline), f"{ref}.run_if")
        if run_if is not None:
            refs |= set(run_if.references.actions)
        loops: list[tuple[str, Expression]] = []
        raw_loops = item.get("for_each")
        if raw_loops is not None and not isinstance(raw_loops, str | list):
            b.fail(
                _line(item, "for_each", sline),
                f"{ref}.for_each must be '${{{{ for var.x in … }}}}' or a list of them",
            )
            raw_loops = None
        for src in [raw_loops] if isinstance(raw_loops, str) else (raw_loops or []):
            try:
                name, loop_expr = compile_iterator(src) if isinstance(src, str) else (None, None)
            except ExpressionError as exc:
                b.fail(_line(item, "for_each", sline), f"{ref}.for_each: {exc}")
                continue
            if name is None or loop_expr is None:
                b.fail(
                    _line(item, "for_each", sline),
                    f"{ref}.for_each must be '${{{{ for var.x in … }}}}' or a list of them",
                )
                continue
            refs |= set(loop_expr.references.actions)
            loops.append((name, loop_expr))
        edges = _edges(b, item.get("depends_on"), _line(item, "depends_on", sline), ref)
        join = item.get("join_strategy", "all")
        if join not in ("all", "any"):
            b.fail(_line(item, "join_strategy", sline), f"{ref}: join_strategy is all or any")
        delay = timedelta(0)
        raw_delay = item.get("start_delay")
        if isinstance(raw_delay, int | float) and not isinstance(raw_delay, bool):
            if raw_delay < 0 or raw_delay > 30 * 86400:
                b.fail(
                    _line(item, "start_delay", sline),
                    f"{ref}: start_delay must be 0 to 30 days in seconds",
                )
            else:
                delay = timedelta(seconds=raw_delay)  # Tracecat: float seconds
        elif raw_delay:
            try:
                delay = parse_duration(raw_delay, f"{ref}.start_delay")
            except ConfigError as exc:
                b.fail(_line(item, "start_delay", sline), str(exc))
        for key in ("wait_until", "environment"):
            if item.get(key) is not None:
                b.fail(_line(item, key, sline), f"{ref}: {key} is not supported by Casefold")
        references[ref] = (sline, refs)
        steps[ref] = ActionStep(
            ref=ref,
            action=spec.name if spec else str(action_name),
            args=compiled_args or compile_value({}),
            depends_on=tuple(edges),
            run_if=run_if,
            for_each=tuple(loops),
            retry=_retry(b, item.get("retry_policy"), _line(item, "retry_policy", sline), ref),
            start_delay=delay,
            join_any=join == "any",
            line=sline,
        )
    for ref, step in steps.items():
        for edge in step.depends_on:
            if edge.ref not in steps:
                b.fail(step.line, f"{ref}: depends_on names unknown ref {edge.ref!r}")
        sline, used = references[ref]
        for name in sorted(used - set(steps)):
            b.fail(sline, f"{ref}: ACTIONS.{name} names no action of this playbook")
    return _topological(b, steps)


def _topological(b: _Builder, steps: dict[str, ActionStep]) -> list[ActionStep]:
    order: list[ActionStep] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(ref: str, trail: list[str]) -> None:
        if state.get(ref) == 2 or ref not in steps:
            return
        if state.get(ref) == 1:
            cycle = " -> ".join([*trail[trail.index(ref) :], ref])
            b.fail(steps[ref].line, f"cycle in depends_on: {cycle}")
            return
        state[ref] = 1
        for edge in steps[ref].depends_on:
            visit(edge.ref, [*trail, ref])
        state[ref] = 2
        order.append(steps[ref])

    for ref in steps:
        visit(ref, [])
    return order


def load_playbook(path: Path, registry: ActionRegistry = REGISTRY) -> Playbook:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError([Problem(str(path), 0, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise PlaybookError([Problem(str(path), 0, "not UTF-8 text")]) from None
    return parse_playbook(text, str(path), registry)
