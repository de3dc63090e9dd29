"""A loaded playbook: plain data with its expressions already compiled."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from casefold.expressions import CompiledValue, Expression, Template


@dataclass(frozen=True)
class Edge:
    """`depends_on: [a]` (or `a.success`) waits for a to succeed; `a.error` runs if a failed."""

    ref: str
    on_error: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: float = 1.0  # seconds before the 2nd attempt; doubles each time
    max_backoff: float = 300.0
    timeout: float = 30.0  # seconds per attempt (network actions)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))


@dataclass(frozen=True)
class ActionStep:
    ref: str
    action: str  # canonical action name
    args: CompiledValue
    depends_on: tuple[Edge, ...] = ()
    run_if: Expression | Template | None = None
    for_each: tuple[tuple[str, Expression], ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    start_delay: timedelta = timedelta(0)
    join_any: bool = False
    line: int = 0


@dataclass(frozen=True)
class Trigger:
    sources: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    rule_ids: frozenset[str] = frozenset()
    min_level: int = 0
    max_level: int = 99
    condition: Expression | Template | None = None

    def matches_static(self, alert: dict[str, Any]) -> bool:
        """Filters on the normalised alert (source, groups, level, rule id)."""
        if self.sources and alert.get("source") not in self.sources:
            return False
        level = alert.get("level") or 0
        if not self.min_level <= level <= self.max_level:
            return False
        if self.rule_ids and alert.get("rule_id") not in self.rule_ids:
            return False
        if self.groups and self.groups.isdisjoint(alert.get("groups") or ()):
            return False
        return True


@dataclass(frozen=True)
class Playbook:
    name: str  # the file's stem: unique, used as the run's playbook name
    title: str
    description: str
    trigger: Trigger
    steps: tuple[ActionStep, ...]  # in a topological order
    version: str  # content hash
    path: str
    enabled: bool = True

    def step(self, ref: str) -> ActionStep:
        for s in self.steps:
            if s.ref == ref:
                return s
        raise KeyError(ref)
