"""The ``FN.*`` registry: a decorator records each function's name, arity and types.

Like jmespath's ``@signature``, a function declares its contract once, in its
Python signature. ``register`` reads it (``typing.get_type_hints`` plus
``inspect.signature``) and builds a :class:`FunctionInfo`:

* ``min_args``/``max_args`` let the parser reject ``FN.lookup(x)`` at compile time;
* per-parameter type checks give uniform runtime errors
  (``FN.join: argument 1 (items) must be a list, got string``) before the body
  runs, so bodies can assume their types;
* ``state=True`` functions receive the evaluation state first (budgets: steps,
  sizes, regex timeout); it is not part of the user-visible signature.

Bodies raise :class:`EvaluationError` for domain errors. Any other exception that
escapes a body is wrapped by the compiler, so nothing raw reaches callers.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EvaluationError
from ..typenames import type_name

__all__ = ["FUNCTIONS", "FunctionInfo", "register", "type_name"]


_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    tuple: "a list",
    dict: "an object",
    Mapping: "an object",
    _dt.datetime: "a datetime",
    _dt.timedelta: "a duration",
    _dt.date: "a date",
    _dt.time: "a time",
}
_EXPAND: dict[type, tuple[type, ...]] = {
    float: (int, float),
    list: (list, tuple),
    dict: (Mapping,),
}


@dataclass(frozen=True, slots=True)
class _Check:
    types: tuple[type, ...]
    label: str
    allow_none: bool


def _check_for(annotation: Any) -> _Check | None:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    members = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    allow_none = False
    kinds: list[type] = []
    labels: list[str] = []
    for m in members:
        if m is type(None):
            allow_none = True
            continue
        origin = typing.get_origin(m) or m
        if origin is Any or not isinstance(origin, type):
            return None
        kinds.extend(_EXPAND.get(origin, (origin,)))
        label = _NAMES.get(origin, origin.__name__)
        if label not in labels:
            labels.append(label)
    if not kinds:
        return None
    label = " or ".join(labels) + (" or null" if allow_none else "")
    return _Check(tuple(kinds), label, allow_none)


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """Metadata (and implementation) of one ``FN.*`` function."""

    name: str
    impl: Callable[..., Any]
    params: tuple[str, ...]
    min_args: int
    max_args: int | None  # None: variadic
    needs_state: bool
    category: str
    doc: str
    deterministic: bool
    checks: tuple[_Check | None, ...]
    vararg_check: _Check | None

    @property
    def signature(self) -> str:
        return f"FN.{self.name}({', '.join(self.params)})"

    def check_args(self, args: list[Any] | tuple[Any, ...]) -> None:
        """Raise EvaluationError if an argument has the wrong type."""
        checks = self.checks
        for i, value in enumerate(args):
            chk = checks[i] if i < len(checks) else self.vararg_check
            if chk is None:
                continue
            if value is None:
                if chk.allow_none:
                    continue
            elif isinstance(value, chk.types) and not (
                isinstance(value, bool) and bool not in chk.types
            ):
                continue
            pname = self.params[i] if i < len(self.params) else self.params[-1]
            raise EvaluationError(
                f"FN.{self.name}: argument {i + 1} ({pname.lstrip('*')}) must be "
                f"{chk.label}, got {type_name(value)}"
            )


FUNCTIONS: dict[str, FunctionInfo] = {}


def register(
    name: str | None = None,
    *,
    aliases: tuple[str, ...] = (),
    state: bool = False,
    category: str = "",
    deterministic: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as ``FN.<name>`` (default: its own name)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        params = list(sig.parameters.values())
        if state:
            params = params[1:]
        names: list[str] = []
        checks: list[_Check | None] = []
        vararg: _Check | None = None
        min_args = 0
        max_args: int | None = 0
        for p in params:
            ann = hints.get(p.name, Any)
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                names.append("*" + p.name)
                vararg = _check_for(ann)
                max_args = None
                continue
            names.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}?")
            checks.append(_check_for(ann))
            if p.default is inspect.Parameter.empty:
                min_args += 1
            if max_args is not None:
                max_args += 1
        doc = inspect.getdoc(fn) or ""
        for fname in (name or fn.__name__.rstrip("_"), *aliases):
            if fname in FUNCTIONS:
                raise RuntimeError(f"FN.{fname} registered twice")
            FUNCTIONS[fname] = FunctionInfo(
                name=fname,
                impl=fn,
                params=tuple(names),
                min_args=min_args,
                max_args=max_args,
                needs_state=state,
                category=category,
                doc=doc.split("\n\n")[0],
                deterministic=deterministic,
                checks=tuple(checks),
                vararg_check=vararg,
            )
        return fn

    return deco
