"""Evaluation budgets: every evaluation is bounded in steps, size, depth and regex time.

Expressions come from playbook authors, but the data they run on (alert text,
webhook bodies) is attacker-influenced, and Tracecat's history shows how cheap
``9**9**9``-style bombs are. So each evaluation carries a small mutable
``EvalState`` built from an immutable :class:`Budget`:

* **steps** are charged only where work is proportional to data: function calls,
  list items visited by wildcards/filters/recursive descent, broadcast (``.map``)
  items, lambda invocations, set operations. Simple expressions (a path, a
  comparison, a ternary) charge nothing, so the hot path stays nearly free.
* **size** is checked *before* allocating wherever the result size is known in
  advance (string repetition, ``join``, ``range``, ``pow``…). ``max_output_bytes``
  bounds a single produced value; ``max_total_bytes`` bounds everything one
  evaluation produced, so a lambda that builds many medium strings stops too.
  Sizes are counted in characters for strings and items for collections.
* **depth** bounds how deep data may be walked (recursive descent, ``flatten``,
  canonical JSON) so hostile nesting cannot exhaust the Python stack.
* **regex_timeout** is handed to the ``regex`` module for every match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import BudgetExceededError

__all__ = ["DEFAULT_BUDGET", "MAX_INT_BITS", "Budget", "EvalState"]

#: Integers bigger than this many bits are refused before they are computed.
MAX_INT_BITS = 4096


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one evaluation (or one template/value render)."""

    max_steps: int = 100_000
    max_output_bytes: int = 1 << 20
    max_depth: int = 64
    regex_timeout: float = 0.05
    max_total_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_output_bytes", "max_depth", "max_total_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Budget.{name} must be positive")
        if self.regex_timeout <= 0:
            raise ValueError("Budget.regex_timeout must be positive")


DEFAULT_BUDGET = Budget()


class EvalState:
    """Per-evaluation counters. Created once per ``evaluate``/``render`` call.

    ``current`` is the item a ``[?filter]`` is testing (``@``).
    """

    __slots__ = ("budget", "steps", "total", "current")

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or DEFAULT_BUDGET
        self.steps = 0
        self.total = 0
        self.current: Any = None

    def charge(self, n: int = 1) -> None:
        """Charge ``n`` steps; raise once the step budget is spent."""
        self.steps += n
        if self.steps > self.budget.max_steps:
            raise BudgetExceededError(
                f"step budget exhausted: more than {self.budget.max_steps} steps"
            )

    def reserve(self, size: int, what: str = "value") -> None:
        """Account for producing a value of ``size`` chars/items, before producing it."""
        if size > self.budget.max_output_bytes:
            raise BudgetExceededError(
                f"{what} would be {size} chars/items, over the limit of "
                f"{self.budget.max_output_bytes}"
            )
        self.total += size
        if self.total > self.budget.max_total_bytes:
            raise BudgetExceededError(
                f"evaluation produced more than {self.budget.max_total_bytes} chars/items in total"
            )

    def check_depth(self, depth: int) -> None:
        if depth > self.budget.max_depth:
            raise BudgetExceededError(
                f"data nested deeper than the depth limit of {self.budget.max_depth}"
            )
