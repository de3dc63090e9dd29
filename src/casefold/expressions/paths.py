"""Our own JSONPath subset, compiled to closures (no jsonpath_ng, no shared parser).

A path is a root (context name, lambda parameter or ``@``) plus segments. Two
evaluators exist because the common case must be fast:

* **plain paths** (only ``.name``, ``['quoted']``, ``[0]``, ``[-1]``) walk keys
  directly and return the value or ``None``. A missing key, an out-of-range
  index or a type mismatch anywhere is simply ``None`` (Tracecat's non-strict
  mode); no exception is raised and no budget is charged.
* **multi paths** (any ``*``, ``..``, slice or ``[?filter]``) carry a list of
  matches from segment to segment and **always return a list**, possibly empty.
  This removes Tracecat's inconsistency where ``[?x > 5]`` returned a scalar for
  one match. Each produced match costs one budget step, recursive descent costs
  one step per visited node and is bounded by ``Budget.max_depth``.

Filters run the predicate (a compiled expression in our own language) with
``@`` bound to each item of a list (or each value of an object). A predicate that
fails with an EvaluationError (``@.sev > 5`` on an item without ``sev``) counts
as "no match", as in JSONPath; budget errors still propagate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .budget import EvalState
from .errors import BudgetExceededError, EvaluationError
from .nodes import DescendSeg, FilterSeg, IndexSeg, KeySeg, Segment, SliceSeg, WildSeg

__all__ = ["Evaluator", "compile_path", "step"]

Evaluator = Callable[[Mapping[str, Any], EvalState], Any]
_SeqTypes = (list, tuple)


def step(value: Any, key: Any) -> Any:
    """One lenient lookup: ``value[key]`` for objects and lists, else None."""
    if isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:  # unhashable key
            return None
    if type(key) is int and isinstance(value, _SeqTypes):
        if -len(value) <= key < len(value):
            return value[key]
    return None


def _root_getter(root: str) -> Evaluator:
    if root == "@":
        return lambda ctx, st: st.current
    return lambda ctx, st: ctx.get(root)


def _compile_plain(root: str, keys: tuple[Any, ...]) -> Evaluator:
    if root == "@":
        get_root = _root_getter(root)
        if not keys:
            return get_root

        def at_path(ctx: Mapping[str, Any], st: EvalState) -> Any:
            v = st.current
            for k in keys:
                v = v.get(k) if type(v) is dict else step(v, k)
                if v is None:
                    return None
            return v

        return at_path

    # Specialised closures: the hot path of every playbook is `ROOT.a.b(.c)`.
    if not keys:
        return lambda ctx, st: ctx.get(root)
    if len(keys) == 1:
        (k1,) = keys

        def path1(ctx: Mapping[str, Any], st: EvalState) -> Any:
            v = ctx.get(root)
            return v.get(k1) if type(v) is dict else step(v, k1)

        return path1
    if len(keys) == 2:
        k1, k2 = keys

        def path2(ctx: Mapping[str, Any], st: EvalState) -> Any:
            v = ctx.get(root)
            v = v.get(k1) if type(v) is dict else step(v, k1)
            return v.get(k2) if type(v) is dict else step(v, k2)

        return path2

    def path_n(ctx: Mapping[str, Any], st: EvalState) -> Any:
        v = ctx.get(root)
        for k in keys:
            v = v.get(k) if type(v) is dict else step(v, k)
            if v is None:
                return None
        return v

    return path_n


# --- multi-match segments: list of matches -> list of matches --------------------------

SegmentFn = Callable[[list[Any], Mapping[str, Any], EvalState], list[Any]]


def _seg_key(key: str) -> SegmentFn:
    def run(nodes: list[Any], ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
        return [n[key] for n in nodes if isinstance(n, Mapping) and key in n]

    return run


def _seg_index(index: int) -> SegmentFn:
    def run(nodes: list[Any], ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
        return [n[index] for n in nodes if isinstance(n, _SeqTypes) and -len(n) <= index < len(n)]

    return run


def _children(node: Any) -> list[Any]:
    if isinstance(node, Mapping):
        return list(node.values())
    if isinstance(node, _SeqTypes):
        return list(node)
    return []


def _seg_wild(nodes: list[Any], ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
    out: list[Any] = []
    for n in nodes:
        out.extend(_children(n))
    return out


def _seg_slice(start: int | None, stop: int | None, stride: int | None) -> SegmentFn:
    sl = slice(start, stop, stride)

    def run(nodes: list[Any], ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
        out: list[Any] = []
        for n in nodes:
            if isinstance(n, _SeqTypes):
                out.extend(n[sl])
        return out

    return run


def _seg_filter(pred: Evaluator) -> SegmentFn:
    def run(nodes: list[Any], ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
        out: list[Any] = []
        saved = st.current
        try:
            for n in nodes:
                for item in _children(n):
                    st.charge(1)
                    st.current = item
                    try:
                        ok = pred(ctx, st)
                    except BudgetExceededError:
                        raise
                    except EvaluationError:
                        continue
                    if ok:
                        out.append(item)
        finally:
            st.current = saved
        return out

    return run


def _seg_descend(key: str | None) -> SegmentFn:
    def run(nodes: list[Any], ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
        out: list[Any] = []
        max_depth = st.budget.max_depth
        for start in nodes:
            # Iterative pre-order walk (document order) with a depth bound.
            stack: list[tuple[Any, int]] = [(start, 0)]
            while stack:
                node, depth = stack.pop()
                st.charge(1)
                if depth > max_depth:
                    st.check_depth(depth)
                if key is None:
                    if depth > 0:
                        out.append(node)
                elif isinstance(node, Mapping) and key in node:
                    out.append(node[key])
                kids = _children(node)
                stack.extend((c, depth + 1) for c in reversed(kids))
        return out

    return run


def compile_path(
    root: str, segments: list[Segment], compile_pred: Callable[[Any], Evaluator]
) -> Evaluator:
    """Compile ``root`` + ``segments``; ``compile_pred`` compiles filter predicates."""
    if all(isinstance(s, KeySeg | IndexSeg) for s in segments):
        keys = tuple(s.key if isinstance(s, KeySeg) else s.index for s in segments)  # type: ignore[union-attr]
        return _compile_plain(root, keys)

    get_root = _root_getter(root)
    fns: list[SegmentFn] = []
    for s in segments:
        if isinstance(s, KeySeg):
            fns.append(_seg_key(s.key))
        elif isinstance(s, IndexSeg):
            fns.append(_seg_index(s.index))
        elif isinstance(s, WildSeg):
            fns.append(_seg_wild)
        elif isinstance(s, SliceSeg):
            fns.append(_seg_slice(s.start, s.stop, s.step))
        elif isinstance(s, FilterSeg):
            fns.append(_seg_filter(compile_pred(s.predicate)))
        elif isinstance(s, DescendSeg):
            fns.append(_seg_descend(s.key))
        else:  # pragma: no cover - parser produces only the kinds above
            raise TypeError(s)
    seg_fns = tuple(fns)

    def multi(ctx: Mapping[str, Any], st: EvalState) -> list[Any]:
        root_value = get_root(ctx, st)
        nodes: list[Any] = [] if root_value is None else [root_value]
        for fn in seg_fns:
            nodes = fn(nodes, ctx, st)
            if nodes:
                st.charge(len(nodes))
            else:
                return []
        return nodes

    return multi
