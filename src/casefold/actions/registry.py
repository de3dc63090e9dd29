"""The action catalogue: name (and Tracecat aliases) → handler, argument names, kind.

`kind` tells the engine how to treat a step: `pure` actions only compute; `case` actions change
cases (their effects are applied in the same transaction that records the step); `network`
actions talk to other systems (their result is recorded as soon as they return, so a crash never
repeats a call that already happened).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from casefold.actions.context import ActionContext

Handler = Callable[[dict[str, Any], "ActionContext"], Any]
Kind = Literal["pure", "case", "network"]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    handler: Handler
    kind: Kind
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    aliases: tuple[str, ...] = ()
    description: str = ""

    def check_args(self, given: set[str]) -> str | None:
        """A problem with the argument names, or None."""
        missing = sorted(self.required - given)
        if missing:
            return f"missing argument {missing[0]!r}"
        unknown = sorted(given - self.required - self.optional)
        if unknown:
            allowed = ", ".join(sorted(self.required | self.optional)) or "none"
            return f"unknown argument {unknown[0]!r} (allowed: {allowed})"
        return None


class StepSkipped(Exception):
    """Raised by an action that chose not to act (e.g. a provider's budget is spent).

    The step is recorded as skipped with `reason`; unlike a skip by `run_if`, it still has a
    `result` (the "unknown" answer) and its dependents run: the run goes on.
    """

    def __init__(self, reason: str, result: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


class ActionRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}
        self._names: dict[str, str] = {}

    def register(self, spec: ActionSpec) -> ActionSpec:
        for name in (spec.name, *spec.aliases):
            if name in self._names:
                raise ValueError(f"action {name!r} is registered twice")
            self._names[name] = spec.name
        self._specs[spec.name] = spec
        return spec

    def action(
        self,
        name: str,
        *,
        kind: Kind,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
        aliases: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.register(
                ActionSpec(
                    name=name,
                    handler=fn,
                    kind=kind,
                    required=frozenset(required),
                    optional=frozenset(optional),
                    aliases=aliases,
                    description=(fn.__doc__ or "").strip().split("\n")[0],
                )
            )
            return fn

        return deco

    def resolve(self, name: str) -> ActionSpec | None:
        canonical = self._names.get(name)
        return self._specs[canonical] if canonical else None

    def names(self) -> list[str]:
        return sorted(self._names)


REGISTRY = ActionRegistry()
