"""FN catalogue, part 1: lookups, JSON/YAML/CSV, logic, collections, math, alert helpers.

Names and argument order follow Tracecat (``contains(item, container)``,
``join(items, sep)``, ``lookup(d, k)``) so workflows port unchanged. Fixes:

* set functions (``unique``, ``union``, ``intersection``, ``difference``,
  ``symmetric_difference``) keep first-seen order and accept dicts/lists, using
  canonical JSON as identity: deterministic across processes;
* everything that can grow (``pow``, ``mul``, ``range``, ``iter_product``,
  ``flatten``, YAML loading) is bounded before it allocates.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping
from typing import Any

import orjson
import yaml

from .. import operators as ops
from ..budget import MAX_INT_BITS, EvalState
from ..errors import BudgetExceededError, EvaluationError
from ._util import canonical_json, dedupe_key, get_path, loads_json, type_name
from .registry import register

Num = int | float
_MAX_YAML_ALIASES = 100


# --- lookups, dicts, JSON ------------------------------------------------------------


@register(category="json")
def lookup(d: dict | list | None, k: Any) -> Any:
    """``d[k]`` or None when absent (lists take integer indexes)."""
    if d is None:
        return None
    if isinstance(d, Mapping):
        try:
            return d.get(k)
        except TypeError:
            raise EvaluationError(f"cannot use {type_name(k)} as an object key") from None
    if type(k) is int and -len(d) <= k < len(d):
        return d[k]
    return None


@register(category="json")
def get(obj: Any, path: str, default: Any = None) -> Any:
    """Dotted-path lookup: ``FN.get(x, 'a.b[0].c', 'fallback')``."""
    return get_path(obj, path, default)


@register(category="json")
def map_keys(x: dict | list, keys: dict) -> Any:
    """Rename keys of an object (or each object of a list); unmapped keys are errors."""

    def rename(d: Any) -> dict[Any, Any]:
        if not isinstance(d, Mapping):
            raise EvaluationError(f"map_keys expects objects, got {type_name(d)}")
        out = {}
        for k, v in d.items():
            if k not in keys:
                raise EvaluationError(f"key {k!r} has no mapping")
            out[keys[k]] = v
        return out

    return [rename(d) for d in x] if isinstance(x, list | tuple) else rename(x)


@register(category="json")
def merge(items: list) -> dict:
    """Merge a list of objects; later keys win."""
    out: dict[Any, Any] = {}
    for d in items:
        if d is None:
            continue
        if not isinstance(d, Mapping):
            raise EvaluationError(f"merge expects a list of objects, found {type_name(d)}")
        out.update(d)
    return out


@register(category="json", state=True)
def flatten_dict(st: EvalState, x: dict | list | str, max_depth: int = 100) -> dict:
    """Flatten nested objects/lists into one level: ``{'a.b': 1, 'c[0]': 2}``."""
    if isinstance(x, str):
        x = loads_json(x)
    limit = min(max_depth, st.budget.max_depth)
    out: dict[str, Any] = {}
    stack: list[tuple[str, Any, int]] = [("", x, 0)]
    while stack:
        prefix, value, depth = stack.pop()
        st.charge(1)
        if isinstance(value, Mapping) and value and depth < limit:
            for k, v in reversed(list(value.items())):
                stack.append((f"{prefix}.{k}" if prefix else str(k), v, depth + 1))
        elif isinstance(value, list | tuple) and value and depth < limit:
            for i in reversed(range(len(value))):
                stack.append((f"{prefix}[{i}]", value[i], depth + 1))
        else:
            out[prefix] = value
    st.reserve(len(out), "flatten_dict result")
    return out


@register(category="json")
def to_keys(x: dict) -> list:
    """The keys of an object."""
    return list(x.keys())


@register(category="json")
def to_values(x: dict) -> list:
    """The values of an object."""
    return list(x.values())


@register(category="json")
def zip_map(keys: list, values: list) -> dict:
    """``{keys[i]: values[i]}``."""
    try:
        return dict(zip(keys, values, strict=False))
    except TypeError:
        raise EvaluationError("zip_map keys must be scalars") from None


@register(category="json")
def is_json(x: Any) -> bool:
    """True if ``x`` is a string holding valid JSON."""
    if not isinstance(x, str):
        return False
    try:
        orjson.loads(x)
    except orjson.JSONDecodeError:
        return False
    return True


@register(category="json", state=True)
def deserialize_json(st: EvalState, x: str) -> Any:
    """Parse JSON text."""
    st.charge(len(x) // 1024)
    return loads_json(x)


@register(category="json", state=True)
def deserialize_ndjson(st: EvalState, x: str) -> list:
    """Parse newline-delimited JSON into a list."""
    st.charge(len(x) // 1024)
    return [loads_json(line) for line in x.splitlines() if line.strip()]


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses alias bombs (billion laughs)."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > _MAX_YAML_ALIASES:
                raise BudgetExceededError("YAML document uses too many aliases")
        return super().compose_node(parent, index)


@register(category="json", state=True)
def deserialize_yaml(st: EvalState, x: str) -> Any:
    """Parse YAML text (safe loader, size- and alias-bounded)."""
    st.reserve(len(x), "YAML input")
    st.charge(len(x) // 256)
    try:
        value = yaml.load(x, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise EvaluationError(f"invalid YAML: {e}") from None
    _check_expanded_size(st, value)
    return value


def _check_expanded_size(st: EvalState, value: Any) -> None:
    """Aliases make YAML a DAG: count the *expanded* tree so a billion laughs stops here."""
    limit = st.budget.max_output_bytes
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limit:
            raise BudgetExceededError(f"YAML document expands to more than {limit} nodes")
        if isinstance(node, dict):
            st.check_depth(depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            st.check_depth(depth)
            stack.extend((v, depth + 1) for v in node)
    st.charge(count // 16)


@register(category="json", state=True, aliases=("serialize",))
def serialize_json(st: EvalState, x: Any) -> str:
    """Compact JSON text."""
    out = ops.to_json(x)
    st.reserve(len(out), "JSON text")
    return out


@register(category="json", state=True)
def prettify_json(st: EvalState, x: Any) -> str:
    """Indented JSON text (2 spaces)."""
    out = ops.to_json(x, indent=True)
    st.reserve(len(out), "JSON text")
    return out


@register(category="json", state=True)
def serialize_yaml(st: EvalState, x: Any) -> str:
    """YAML text."""
    out = yaml.safe_dump(orjson.loads(ops.to_json(x)), sort_keys=False, allow_unicode=True)
    st.reserve(len(out), "YAML text")
    return out


@register(category="json", state=True)
def parse_csv(st: EvalState, x: str) -> list:
    """CSV text with a header row → list of objects."""
    st.reserve(len(x), "CSV input")
    rows = list(csv.DictReader(io.StringIO(x)))
    st.charge(len(rows))
    return rows


# --- comparison and logic ----------------------------------------------------------------


@register(category="logic")
def is_equal(a: Any, b: Any) -> bool:
    """``a == b``."""
    return bool(a == b)


@register(category="logic", aliases=("is_not_equal",))
def not_equal(a: Any, b: Any) -> bool:
    """``a != b``."""
    return bool(a != b)


@register(category="logic")
def greater_than(a: Any, b: Any) -> bool:
    """``a > b``."""
    return ops.compare(">", a, b)


@register(category="logic")
def greater_than_or_equal(a: Any, b: Any) -> bool:
    """``a >= b``."""
    return ops.compare(">=", a, b)


@register(category="logic")
def less_than(a: Any, b: Any) -> bool:
    """``a < b``."""
    return ops.compare("<", a, b)


@register(category="logic")
def less_than_or_equal(a: Any, b: Any) -> bool:
    """``a <= b``."""
    return ops.compare("<=", a, b)


@register(category="logic")
def is_null(x: Any) -> bool:
    """``x is None``."""
    return x is None


@register(category="logic", aliases=("is_not_null",))
def not_null(x: Any) -> bool:
    """``x is not None``."""
    return x is not None


@register("and", category="logic")
def and_(*values: Any) -> bool:
    """True if every argument is truthy."""
    return all(values)


@register("or", category="logic")
def or_(*values: Any) -> bool:
    """True if any argument is truthy."""
    return any(values)


@register("not", category="logic")
def not_(x: Any) -> bool:
    """Logical negation."""
    return not x


@register(category="logic")
def default(x: Any, fallback: Any) -> Any:
    """``x`` unless it is None (or an empty string), else ``fallback``."""
    return fallback if x is None or x == "" else x


@register(category="logic")
def coalesce(*values: Any) -> Any:
    """The first argument that is not None."""
    for v in values:
        if v is not None:
            return v
    return None


# --- collections ---------------------------------------------------------------------------


@register(category="collections", aliases=("is_in",))
def contains(item: Any, container: Any) -> bool:
    """``item in container`` (item first, as in Tracecat); a null container is empty."""
    return ops.contains(item, container)


@register(category="collections", aliases=("not_in", "is_not_in"))
def does_not_contain(item: Any, container: Any) -> bool:
    """``item not in container``."""
    return not ops.contains(item, container)


@register(category="collections")
def contains_any_of(container: Any, items: list) -> bool:
    """True if ``container`` contains at least one of ``items``."""
    return any(ops.contains(i, container) for i in items)


@register(category="collections")
def contains_none_of(container: Any, items: list) -> bool:
    """True if ``container`` contains none of ``items``."""
    return not any(ops.contains(i, container) for i in items)


def _sized(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, str | list | tuple | Mapping):
        return len(x)
    raise EvaluationError(f"{type_name(x)} has no length")


@register(category="collections")
def is_empty(x: Any) -> bool:
    """True for None, '', [] and {}."""
    return _sized(x) == 0


@register(category="collections", aliases=("is_not_empty",))
def not_empty(x: Any) -> bool:
    """Opposite of is_empty."""
    return _sized(x) != 0


@register(category="collections")
def length(x: str | list | dict) -> int:
    """Number of characters, items or keys."""
    return len(x)


@register(category="collections")
def at(seq: list | str, index: int) -> Any:
    """``seq[index]`` (negative indexes count from the end); None if out of range."""
    return seq[index] if -len(seq) <= index < len(seq) else None


@register(category="collections")
def compact(x: list) -> list:
    """Drop None items."""
    return [i for i in x if i is not None]


@register(category="collections")
def drop_nulls(x: list) -> list:
    """Drop None and empty-string items."""
    return [i for i in x if i is not None and i != ""]


@register(category="collections", state=True)
def flatten(st: EvalState, x: list) -> list:
    """Flatten nested lists recursively (depth-bounded)."""
    out: list[Any] = []
    stack: list[tuple[Any, int]] = [(x, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list | tuple):
            st.check_depth(depth)
            st.charge(1)
            stack.extend((v, depth + 1) for v in reversed(value))
        else:
            out.append(value)
    st.reserve(len(out), "flatten result")
    return out


def _unique(st: EvalState, items: Any) -> list[Any]:
    st.charge(len(items))
    seen: set[Any] = set()
    out = []
    for i in items:
        k = dedupe_key(i)
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


@register(category="collections", state=True)
def unique(st: EvalState, items: list) -> list:
    """Distinct items, first occurrence order (dicts compared by canonical JSON)."""
    return _unique(st, items)


@register(category="collections", state=True)
def union(st: EvalState, *collections: list) -> list:
    """Distinct items of all lists, in first-seen order."""
    return _unique(st, [i for c in collections for i in c])


@register(category="collections", state=True)
def intersection(st: EvalState, a: list, *others: list) -> list:
    """Distinct items of ``a`` present in every other list, in ``a``'s order."""
    keysets = []
    for o in others:
        st.charge(len(o))
        keysets.append({dedupe_key(i) for i in o})
    return [i for i in _unique(st, a) if all(dedupe_key(i) in ks for ks in keysets)]


@register(category="collections", state=True)
def difference(st: EvalState, a: list, b: list) -> list:
    """Distinct items of ``a`` not in ``b``, in ``a``'s order."""
    st.charge(len(b))
    keys = {dedupe_key(i) for i in b}
    return [i for i in _unique(st, a) if dedupe_key(i) not in keys]


@register(category="collections", state=True)
def symmetric_difference(st: EvalState, a: list, b: list) -> list:
    """Items in exactly one of the lists: ``a``'s first, then ``b``'s."""
    return difference(st, a, b) + difference(st, b, a)


@register("zip", category="collections", state=True)
def zip_(st: EvalState, *lists: list) -> list:
    """Lists of corresponding items (shortest input wins)."""
    out = [list(t) for t in zip(*lists, strict=False)]
    st.charge(len(out))
    return out


@register(category="collections", state=True)
def iter_product(st: EvalState, *lists: list) -> list:
    """Cartesian product of the lists (bounded)."""
    total = math.prod(len(x) for x in lists)
    st.reserve(total * max(len(lists), 1), "iter_product result")
    st.charge(total)
    return [list(t) for t in itertools.product(*lists)]


@register("range", category="collections", state=True)
def range_(st: EvalState, start: int, end: int | None = None, step: int = 1) -> list:
    """``list(range(start, end, step))``; with one argument, ``range(0, start)``."""
    if step == 0:
        raise EvaluationError("range step cannot be zero")
    r = range(start) if end is None else range(start, end, step)
    st.reserve(len(r), "range")
    st.charge(len(r))
    return list(r)


def _key_fn(key: str | None) -> Any:
    if key is None or key == "":
        return lambda item: item
    return lambda item: get_path(item, key)


@register(category="collections", state=True)
def sort_by(st: EvalState, items: list, key: str | None = None, descending: bool = False) -> list:
    """Sort by a dotted-path key (or the items themselves); nulls sort last."""
    st.charge(len(items))
    kf = _key_fn(key)
    present = [(kf(i), i) for i in items]
    nulls = [i for k, i in present if k is None]
    keyed = [(k, i) for k, i in present if k is not None]
    try:
        keyed.sort(key=lambda p: p[0], reverse=descending)
    except TypeError:
        raise EvaluationError("sort_by: keys are of incomparable types") from None
    return [i for _, i in keyed] + nulls


def _group_key(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return canonical_json(value)


@register(category="collections", state=True)
def group_by(st: EvalState, items: list, key: str) -> dict:
    """``{key value: [items…]}`` in first-seen order."""
    st.charge(len(items))
    out: dict[Any, list[Any]] = {}
    for i in items:
        out.setdefault(_group_key(get_path(i, key)), []).append(i)
    return out


@register(category="collections", state=True)
def count_by(st: EvalState, items: list, key: str | None = None) -> dict:
    """``{key value: count}`` in first-seen order."""
    st.charge(len(items))
    kf = _key_fn(key)
    out: dict[Any, int] = {}
    for i in items:
        k = _group_key(kf(i))
        out[k] = out.get(k, 0) + 1
    return out


# --- math --------------------------------------------------------------------------------


@register(category="math", state=True)
def add(st: EvalState, a: Any, b: Any) -> Any:
    """``a + b`` (numbers, strings, lists, datetimes)."""
    return ops.add(st, a, b)


@register(category="math")
def sub(a: Any, b: Any) -> Any:
    """``a - b``."""
    return ops.subtract(None, a, b)


@register(category="math", state=True)
def mul(st: EvalState, a: Any, b: Any) -> Any:
    """``a * b`` (string/list repetition is size-checked first)."""
    return ops.multiply(st, a, b)


@register(category="math")
def div(a: Any, b: Any) -> Any:
    """``a / b`` (true division; dividing by zero is an error)."""
    return ops.divide(None, a, b)


@register(category="math")
def mod(a: Any, b: Any) -> Any:
    """``a % b``."""
    return ops.modulo(None, a, b)


@register("pow", category="math")
def pow_(a: Num, b: Num) -> Num:
    """``a ** b``, refused before computing if the result would be huge."""
    if type(a) is int and type(b) is int and b > 0 and abs(a) > 1:
        bits = b * math.log2(abs(a))
        if bits > MAX_INT_BITS:
            raise BudgetExceededError(
                f"pow result would have about {bits:.0f} bits (limit {MAX_INT_BITS})"
            )
    try:
        if type(a) is int and type(b) is int and b >= 0:
            return a**b
        result = math.pow(a, b)
    except ZeroDivisionError:
        raise EvaluationError("zero cannot be raised to a negative power") from None
    except (OverflowError, ValueError) as e:
        raise EvaluationError(f"pow({a!r:.20}, {b!r:.20}): {e}") from None
    return result


@register("sum", category="math", state=True)
def sum_(st: EvalState, items: list, start: Num = 0) -> Num:
    """Sum of numbers."""
    st.charge(len(items))
    for i in items:
        if not isinstance(i, int | float) or isinstance(i, bool):
            raise EvaluationError(f"sum expects numbers, found {type_name(i)}")
    return ops.check_int(st, sum(items, start))


def _extreme(name: str, pick: Any, values: tuple[Any, ...]) -> Any:
    items = values[0] if len(values) == 1 and isinstance(values[0], list | tuple) else values
    if not items:
        raise EvaluationError(f"{name} of an empty list")
    try:
        return pick(items)
    except TypeError:
        raise EvaluationError(f"{name}: values are of incomparable types") from None


@register("min", category="math")
def min_(*values: Any) -> Any:
    """Smallest of the arguments (or of a single list argument)."""
    return _extreme("min", min, values)


@register("max", category="math")
def max_(*values: Any) -> Any:
    """Largest of the arguments (or of a single list argument)."""
    return _extreme("max", max, values)


@register("abs", category="math")
def abs_(x: Num) -> Num:
    """Absolute value."""
    return abs(x)


@register("round", category="math")
def round_(x: Num, ndigits: int = 0) -> Num:
    """Round to ``ndigits`` decimals (an integer when ``ndigits`` is 0)."""
    return round(x) if ndigits == 0 else round(x, ndigits)
