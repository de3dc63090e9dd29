"""Helpers shared by the FN modules: canonical JSON, hashable keys, dotted paths, regex."""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Mapping
from typing import Any

import orjson
import regex

from ..budget import EvalState
from ..errors import BudgetExceededError, EvaluationError
from ..operators import to_json, to_text
from ..typenames import type_name

__all__ = [
    "canonical_json",
    "dedupe_key",
    "get_path",
    "regex_pattern",
    "split_path",
    "text_of",
    "to_json",
    "to_text",
    "type_name",
]

_MAX_PATTERN = 2000


def canonical_json(value: Any) -> str:
    """Sorted-key compact JSON: the identity of a value for hashing and de-duplication."""
    return to_json(value, sort_keys=True)


def dedupe_key(value: Any) -> Any:
    """A hashable key with JSON equality: dicts and lists by canonical JSON, bools apart."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time | _dt.timedelta):
        return (4, value)
    return (5, canonical_json(value))


def split_path(path: str) -> list[str | int]:
    """``'a.b[0].c'`` / ``'a.b.0'`` → ``['a', 'b', 0, 'c']``."""
    parts: list[str | int] = []
    for raw in path.replace("[", ".").replace("]", "").split("."):
        if raw == "":
            continue
        parts.append(int(raw) if raw.lstrip("-").isdigit() else raw)
    return parts


def get_path(obj: Any, path: str | list[str | int], default: Any = None) -> Any:
    """Lenient dotted-path lookup used by FN.get / sort_by / group_by."""
    parts = split_path(path) if isinstance(path, str) else path
    cur = obj
    for p in parts:
        if isinstance(cur, Mapping):
            if p in cur:
                cur = cur[p]
            elif isinstance(p, int) and str(p) in cur:
                cur = cur[str(p)]
            else:
                return default
        elif isinstance(cur, list | tuple) and isinstance(p, int):
            if -len(cur) <= p < len(cur):
                cur = cur[p]
            else:
                return default
        else:
            return default
    return cur


def text_of(value: Any) -> str:
    return to_text(value)


@functools.lru_cache(maxsize=512)
def _compile_regex(pattern: str, flags: int) -> Any:
    return regex.compile(pattern, flags)


def regex_pattern(pattern: str, flags: int = 0) -> Any:
    """Compile (once, cached) a user pattern with the ``regex`` module."""
    if len(pattern) > _MAX_PATTERN:
        raise EvaluationError(f"regex pattern longer than {_MAX_PATTERN} characters")
    try:
        return _compile_regex(pattern, flags)
    except regex.error as e:
        raise EvaluationError(f"invalid regex {pattern!r}: {e}") from None


def regex_call(st: EvalState, method: Any, *args: Any) -> Any:
    """Run a compiled-pattern method with the budget's timeout."""
    try:
        return method(*args, timeout=st.budget.regex_timeout)
    except TimeoutError:
        raise BudgetExceededError(
            f"regex took longer than {st.budget.regex_timeout:g}s (catastrophic backtracking?)"
        ) from None


def loads_json(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise EvaluationError(f"invalid JSON: {e}") from None
