"""Operator semantics: Python-like, but total (errors are EvaluationError) and bounded.

Decisions (see docs/expressions.md):

* ``+ - * / %`` follow Python for numbers, strings, lists, datetimes and
  durations. Anything else (``'a' + 1``, ``None - 1``) is an EvaluationError
  naming both types, never a leaked ``TypeError``. ``%`` is numeric only, so
  ``'%s' % x`` formatting does not exist.
* Sizes are checked **before** allocating: ``'x' * n``, ``[..] * n``, string and
  list concatenation go through ``EvalState.reserve``; integer products whose
  bit length would exceed ``MAX_INT_BITS`` are refused.
* ``== !=`` work on any pair of values; ordering comparisons between
  incompatible types (``None > 5``) are EvaluationErrors.
* ``x in None`` is False (a missing path is an empty container); ``in`` on
  numbers is an error.
* ``is`` is value identity, defined without CPython object identity:
  ``None``/booleans compare by identity, other values are ``is`` when they have
  the same type and are equal. (``1000 is 1000`` must not depend on interning.)
* Text conversion (interpolation, ``str()``, ``-> str``) renders strings as-is,
  numbers with ``str``, and everything else as compact JSON: ``None`` → ``null``,
  ``True`` → ``true``, dicts/lists → JSON, datetimes → ISO 8601, durations →
  seconds.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from .budget import MAX_INT_BITS, EvalState
from .errors import BudgetExceededError, EvaluationError
from .typenames import type_name

__all__ = [
    "add",
    "cast",
    "compare",
    "contains",
    "divide",
    "identical",
    "modulo",
    "multiply",
    "negate",
    "positive",
    "subtract",
    "to_json",
    "to_text",
]

_NUM = (int, float)
_TIME = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta)


def _is_num(v: Any) -> bool:
    return isinstance(v, _NUM)


def _bad(op: str, a: Any, b: Any) -> EvaluationError:
    return EvaluationError(f"unsupported operand types for {op}: {type_name(a)} and {type_name(b)}")


def check_int(st: EvalState | None, value: Any) -> Any:
    """Refuse integers past ``MAX_INT_BITS`` (only after cheap operations)."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise BudgetExceededError(f"integer result larger than {MAX_INT_BITS} bits")
    return value


def add(st: EvalState, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is str and tb is str:
        st.reserve(len(a) + len(b), "string")
        return a + b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return check_int(st, a + b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        st.reserve(len(a) + len(b), "list")
        return list(a) + list(b)
    if _is_num(a) and _is_num(b):  # bools
        return a + b
    if isinstance(a, _TIME) or isinstance(b, _TIME):
        try:
            return a + b
        except (TypeError, OverflowError) as e:
            raise _bad("+", a, b) from e
    raise _bad("+", a, b)


def subtract(st: EvalState | None, a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return check_int(st, a - b)
    if isinstance(a, _TIME) and isinstance(b, _TIME):
        try:
            return a - b
        except (TypeError, OverflowError) as e:
            raise _bad("-", a, b) from e
    raise _bad("-", a, b)


def _weight(value: Any, cap: int) -> int:
    """Cells in a value, counting nested lists and dicts (and string lengths); stops past `cap`.

    A list repeated n times holds n references to the same items, but serialising or copying it
    costs every cell: `[[[1] * 1000] * 1000] * 1000` is 10^9 cells while each step looks small.
    """
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) or 1
        elif isinstance(item, list | tuple):
            total += 1
            stack.extend(item)
        elif isinstance(item, dict):
            total += 1
            stack.extend(item.values())
        else:
            total += 1
    return total


def _repeat(st: EvalState, seq: Any, n: Any) -> Any:
    if isinstance(n, bool) or not isinstance(n, int):
        raise _bad("*", seq, n)
    count = max(n, 0)
    if isinstance(seq, str) or count == 0:
        st.reserve(len(seq) * count, "repetition")
    else:
        limit = st.budget.max_output_bytes
        per_copy = max(1, _weight(list(seq), limit // count + 1) - 1)
        st.reserve(per_copy * count, "repetition")
    return seq * count if isinstance(seq, str) else list(seq) * count


def multiply(st: EvalState, a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        if type(a) is int and type(b) is int:
            if a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
                raise BudgetExceededError(f"integer result larger than {MAX_INT_BITS} bits")
        return check_int(st, a * b)
    if isinstance(a, str | list | tuple):
        return _repeat(st, a, b)
    if isinstance(b, str | list | tuple):
        return _repeat(st, b, a)
    if isinstance(a, _dt.timedelta) or isinstance(b, _dt.timedelta):
        try:
            return a * b
        except (TypeError, OverflowError) as e:
            raise _bad("*", a, b) from e
    raise _bad("*", a, b)


def divide(st: EvalState | None, a: Any, b: Any) -> Any:
    if (_is_num(a) or isinstance(a, _dt.timedelta)) and (
        _is_num(b) or isinstance(b, _dt.timedelta)
    ):
        if not b:
            raise EvaluationError("division by zero")
        try:
            return a / b
        except (TypeError, OverflowError) as e:
            raise _bad("/", a, b) from e
    raise _bad("/", a, b)


def modulo(st: EvalState | None, a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        if not b:
            raise EvaluationError("modulo by zero")
        return a % b
    raise _bad("%", a, b)


def negate(st: EvalState | None, a: Any) -> Any:
    if _is_num(a) or isinstance(a, _dt.timedelta):
        return -a
    raise EvaluationError(f"bad operand type for unary -: {type_name(a)}")


def positive(st: EvalState | None, a: Any) -> Any:
    if _is_num(a) or isinstance(a, _dt.timedelta):
        return +a
    raise EvaluationError(f"bad operand type for unary +: {type_name(a)}")


def compare_error(op: str, a: Any, b: Any) -> EvaluationError:
    return EvaluationError(f"cannot compare {type_name(a)} {op} {type_name(b)}")


def compare(op: str, a: Any, b: Any) -> bool:
    """Ordering comparison with EvaluationError instead of TypeError."""
    try:
        if op == "<":
            return a < b  # type: ignore[no-any-return]
        if op == "<=":
            return a <= b  # type: ignore[no-any-return]
        if op == ">":
            return a > b  # type: ignore[no-any-return]
        return a >= b  # type: ignore[no-any-return]
    except TypeError as e:
        raise compare_error(op, a, b) from e


def contains(item: Any, container: Any) -> bool:
    """``item in container`` with None as the empty container."""
    if container is None:
        return False
    if isinstance(container, str):
        if not isinstance(item, str):
            raise EvaluationError(
                f"'in <string>' requires a string on the left, got {type_name(item)}"
            )
        return item in container
    if isinstance(container, Mapping | list | tuple | set | frozenset):
        try:
            return item in container
        except TypeError as e:  # unhashable key against a dict
            raise EvaluationError(
                f"cannot look up {type_name(item)} in {type_name(container)}"
            ) from e
    raise EvaluationError(f"'in' needs a list, object or string, got {type_name(container)}")


def identical(a: Any, b: Any) -> bool:
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return type(a) is type(b) and a == b


# --- text and JSON -------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, int):  # beyond 64 bits orjson refuses
        return str(value)
    raise TypeError(f"cannot serialise {type_name(value)}")


_JSON_OPTS = orjson.OPT_NON_STR_KEYS


def to_json(value: Any, *, indent: bool = False, sort_keys: bool = False) -> str:
    """Compact (or indented) JSON text of ``value``; EvaluationError if impossible."""
    opts = _JSON_OPTS
    if indent:
        opts |= orjson.OPT_INDENT_2
    if sort_keys:
        opts |= orjson.OPT_SORT_KEYS
    try:
        return orjson.dumps(value, default=_json_default, option=opts).decode()
    except orjson.JSONEncodeError as e:
        # orjson refuses ints over 64 bits and NaN handling differs; fall back once.
        try:
            return json.dumps(
                value,
                default=_json_default,
                ensure_ascii=False,
                indent=2 if indent else None,
                separators=None if indent else (",", ":"),
                sort_keys=sort_keys,
            )
        except (TypeError, ValueError, RecursionError):
            raise EvaluationError(f"cannot serialise value as JSON: {e}") from e


def to_text(value: Any) -> str:
    """Interpolation / ``str()`` rendering (strings as-is, scalars plain, rest JSON)."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is int:
        try:
            return str(value)
        except ValueError as e:  # more digits than Python allows
            raise EvaluationError("integer too large to convert to text") from e
    if t is float:
        return repr(value) if math.isfinite(value) else str(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return to_text(value.total_seconds())
    if isinstance(value, str):
        return str(value)
    return to_json(value)


_TRUE_STRINGS = frozenset({"true", "1"})


def cast(kind: str, value: Any) -> Any:
    """``int(x)``, ``float(x)``, ``str(x)``, ``bool(x)`` and ``-> type``."""
    if kind == "str":
        return to_text(value)
    if kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in _TRUE_STRINGS
        return bool(value)
    if value is None or isinstance(value, list | tuple | Mapping):
        raise EvaluationError(f"cannot convert {type_name(value)} to {kind}")
    try:
        if kind == "int":
            if isinstance(value, str) and len(value) > 1000:
                raise EvaluationError("string too long to convert to int")
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    return int(float(value))
            return int(value)
        if isinstance(value, str) and len(value) > 1000:
            raise EvaluationError("string too long to convert to float")
        return float(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise EvaluationError(f"cannot convert {type_name(value)} {value!r:.40} to {kind}") from e
