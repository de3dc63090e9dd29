"""AST → nested Python closures, and the compiled :class:`Expression` object.

Each node becomes a closure ``f(ctx, st) -> value`` built once at compile time;
evaluating is calling the root closure. No text is ever handed to ``eval``,
``exec`` or ``compile``. Specialisations keep the common playbook shapes cheap:

* plain paths are direct key walks (see ``paths.py``);
* comparisons against a literal capture the constant instead of calling a closure;
* literal lists on the right of ``in`` become tuples built once;
* expressions whose tree needs no budget (no calls, no multi-match paths, no
  ``+``/``*``) skip creating the per-evaluation ``EvalState`` entirely.

Errors: operator helpers raise :class:`EvaluationError`; closures stamp the
node's source offset onto errors that lack one; ``Expression.evaluate`` stamps
the source and converts anything unexpected (``RecursionError`` on absurdly
deep data, ``MemoryError``, a bug) into an :class:`ExpressionError`, so callers
only ever see the package's own errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import operators as ops
from .budget import Budget, EvalState
from .errors import BudgetExceededError, EvaluationError, ExpressionError, ParseError
from .functions import FUNCTIONS
from .nodes import (
    Binary,
    Call,
    Cast,
    DictExpr,
    Index,
    KeySeg,
    ListExpr,
    Literal,
    Logical,
    Node,
    Path,
    Ternary,
    Unary,
    walk,
)
from .parser import parse_expression, parse_iterator
from .paths import compile_path
from .typenames import type_name

__all__ = [
    "Evaluator",
    "Expression",
    "References",
    "compile_expression",
    "compile_iterator",
    "compile_node",
    "references_of",
    "run_guarded",
]

Evaluator = Callable[[Mapping[str, Any], EvalState], Any]
_IMMUTABLE = (str, int, float, bool, type(None))
_MAX_BROADCAST = 100_000


# --- references (what the playbook validator needs) ------------------------------------


@dataclass(frozen=True, slots=True)
class References:
    """What an expression refers to, for static validation before publishing."""

    actions: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    roots: frozenset[str] = frozenset()
    secrets: frozenset[tuple[str, str]] = frozenset()
    variables: frozenset[tuple[str, str | None]] = frozenset()
    #: ACTIONS used with a wildcard/filter/descent/dynamic index instead of a name.
    dynamic_actions: bool = False

    def __or__(self, other: References) -> References:
        return References(
            self.actions | other.actions,
            self.functions | other.functions,
            self.roots | other.roots,
            self.secrets | other.secrets,
            self.variables | other.variables,
            self.dynamic_actions or other.dynamic_actions,
        )


EMPTY_REFERENCES = References()


def references_of(node: Node, locals_: Iterable[str] = ()) -> References:
    skip = {"@", *locals_}
    actions: set[str] = set()
    functions: set[str] = set()
    roots: set[str] = set()
    secrets: set[tuple[str, str]] = set()
    variables: set[tuple[str, str | None]] = set()
    dynamic = False
    for n, _ in walk(node):
        if isinstance(n, Call):
            functions.add(n.name)
        elif isinstance(n, Path) and n.root not in skip:
            roots.add(n.root)
            segs = n.segments
            if n.root == "ACTIONS":
                if segs and isinstance(segs[0], KeySeg):
                    actions.add(segs[0].key)
                else:
                    dynamic = True
            elif n.root == "SECRETS":
                secrets.add((segs[0].key, segs[1].key))  # type: ignore[union-attr]
            elif n.root == "VARS":
                key = segs[1].key if len(segs) > 1 else None  # type: ignore[union-attr]
                variables.add((segs[0].key, key))  # type: ignore[union-attr]
    return References(
        frozenset(actions),
        frozenset(functions),
        frozenset(roots),
        frozenset(secrets),
        frozenset(variables),
        dynamic,
    )


def _needs_state(node: Node) -> bool:
    for n, _ in walk(node):
        if isinstance(n, Call):
            return True
        if isinstance(n, Path) and n.is_multi:
            return True
        if isinstance(n, Binary) and n.op in ("+", "*", "-"):
            return True
        if isinstance(n, Index) and n.slice is not None:
            return True
    return False


# --- node compilers ------------------------------------------------------------------


def _stamp(err: ExpressionError, pos: int) -> ExpressionError:
    if isinstance(err, EvaluationError) and err.offset is None:
        err.offset = pos
    return err


def _const(node: Node) -> tuple[bool, Any]:
    if isinstance(node, Literal) and isinstance(node.value, _IMMUTABLE):
        return True, node.value
    return False, None


def _index_value(base: Any, key: Any) -> Any:
    if base is None:
        return None
    if isinstance(base, Mapping):
        try:
            return base.get(key)
        except TypeError as e:
            raise EvaluationError(f"cannot use {type_name(key)} as an object key") from e
    if isinstance(base, list | tuple | str):
        if type(key) is not int:
            raise EvaluationError(
                f"{type_name(base)} indices must be integers, got {type_name(key)}"
            )
        return base[key] if -len(base) <= key < len(base) else None
    raise EvaluationError(f"cannot index into {type_name(base)}")


def _slice_value(base: Any, start: Any, stop: Any, stride: Any) -> Any:
    if base is None:
        return None
    for v in (start, stop, stride):
        if v is not None and type(v) is not int:
            raise EvaluationError(f"slice bounds must be integers, got {type_name(v)}")
    if stride == 0:
        raise EvaluationError("slice step cannot be zero")
    if isinstance(base, list | tuple | str):
        out = base[start:stop:stride]
        return list(out) if isinstance(out, tuple) else out
    raise EvaluationError(f"cannot slice {type_name(base)}")


def _broadcast(info: Any, st: EvalState, args: list[Any], impl: Callable[..., Any]) -> list[Any]:
    lists = [a for a in args if isinstance(a, list | tuple)]
    if not lists:
        info.check_args(args)
        return [impl(st, *args) if info.needs_state else impl(*args)]
    n = min(len(a) for a in lists)
    if n > _MAX_BROADCAST:
        raise BudgetExceededError(f"FN.{info.name}.map over more than {_MAX_BROADCAST} items")
    st.charge(n)
    out = []
    for i in range(n):
        row = [a[i] if isinstance(a, list | tuple) else a for a in args]
        info.check_args(row)
        out.append(impl(st, *row) if info.needs_state else impl(*row))
    return out


def compile_node(node: Node) -> Evaluator:
    """Compile one AST node (recursively; depth is bounded by the parser)."""
    pos = node.pos

    if isinstance(node, Literal):
        value = node.value
        return lambda ctx, st: value

    if isinstance(node, ListExpr):
        consts = [_const(i) for i in node.items]
        if all(ok for ok, _ in consts):
            frozen = tuple(v for _, v in consts)
            return lambda ctx, st: list(frozen)  # a fresh list: callers may mutate results
        item_fns = tuple(compile_node(i) for i in node.items)
        return lambda ctx, st: [f(ctx, st) for f in item_fns]

    if isinstance(node, DictExpr):
        const_pairs = [(_const(k), _const(v)) for k, v in node.pairs]
        if all(kc[0] and vc[0] for kc, vc in const_pairs):
            frozen_dict = {kc[1]: vc[1] for kc, vc in const_pairs}
            return lambda ctx, st: frozen_dict.copy()
        pair_fns = tuple((compile_node(k), compile_node(v)) for k, v in node.pairs)

        def dict_expr(ctx: Mapping[str, Any], st: EvalState) -> Any:
            out: dict[Any, Any] = {}
            for kf, vf in pair_fns:
                key = kf(ctx, st)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise _stamp(
                        EvaluationError(f"object keys must be scalars, got {type_name(key)}"), pos
                    )
                out[key] = vf(ctx, st)
            return out

        return dict_expr

    if isinstance(node, Path):
        return compile_path(node.root, node.segments, compile_node)

    if isinstance(node, Index):
        base_fn = compile_node(node.base)
        if node.slice is not None:
            parts = tuple(compile_node(p) if p is not None else None for p in node.slice)

            def slice_expr(ctx: Mapping[str, Any], st: EvalState) -> Any:
                base = base_fn(ctx, st)
                a, b, c = (p(ctx, st) if p is not None else None for p in parts)
                try:
                    return _slice_value(base, a, b, c)
                except ExpressionError as e:
                    raise _stamp(e, pos) from None

            return slice_expr
        assert node.index is not None
        ok, key = _const(node.index)
        if ok:

            def index_const(ctx: Mapping[str, Any], st: EvalState) -> Any:
                base = base_fn(ctx, st)
                if type(base) is dict:
                    return base.get(key)
                try:
                    return _index_value(base, key)
                except ExpressionError as e:
                    raise _stamp(e, pos) from None

            return index_const
        key_fn = compile_node(node.index)

        def index_expr(ctx: Mapping[str, Any], st: EvalState) -> Any:
            try:
                return _index_value(base_fn(ctx, st), key_fn(ctx, st))
            except ExpressionError as e:
                raise _stamp(e, pos) from None

        return index_expr

    if isinstance(node, Call):
        return _compile_call(node)

    if isinstance(node, Unary):
        operand = compile_node(node.operand)
        if node.op == "not":
            return lambda ctx, st: not operand(ctx, st)
        unary_op = ops.negate if node.op == "-" else ops.positive

        def unary(ctx: Mapping[str, Any], st: EvalState) -> Any:
            try:
                return unary_op(st, operand(ctx, st))
            except ExpressionError as e:
                raise _stamp(e, pos) from None

        return unary

    if isinstance(node, Logical):
        left, right = compile_node(node.left), compile_node(node.right)
        if node.op == "and":

            def and_(ctx: Mapping[str, Any], st: EvalState) -> Any:
                value = left(ctx, st)
                return right(ctx, st) if value else value

            return and_

        def or_(ctx: Mapping[str, Any], st: EvalState) -> Any:
            value = left(ctx, st)
            return value if value else right(ctx, st)

        return or_

    if isinstance(node, Ternary):
        then, cond, other = (compile_node(n) for n in (node.then, node.cond, node.other))
        return lambda ctx, st: then(ctx, st) if cond(ctx, st) else other(ctx, st)

    if isinstance(node, Cast):
        operand = compile_node(node.operand)
        kind = node.type

        def cast(ctx: Mapping[str, Any], st: EvalState) -> Any:
            try:
                return ops.cast(kind, operand(ctx, st))
            except ExpressionError as e:
                raise _stamp(e, pos) from None

        return cast

    if isinstance(node, Binary):
        return _compile_binary(node)

    raise ParseError(f"cannot compile {type(node).__name__}")  # pragma: no cover


_COMPARE = {"<", "<=", ">", ">="}


def _compile_binary(node: Binary) -> Evaluator:
    op, pos = node.op, node.pos
    left = compile_node(node.left)
    right_const, const = _const(node.right)
    right = compile_node(node.right)

    if op == "==":
        if right_const:
            return lambda ctx, st: left(ctx, st) == const
        return lambda ctx, st: left(ctx, st) == right(ctx, st)
    if op == "!=":
        if right_const:
            return lambda ctx, st: left(ctx, st) != const
        return lambda ctx, st: left(ctx, st) != right(ctx, st)

    if op in _COMPARE:
        if right_const and type(const) in (int, float):
            # The hot path `ACTIONS.x.result >= 12`: one try, no helper call.
            c = const
            if op == ">=":

                def ge_c(ctx: Mapping[str, Any], st: EvalState) -> Any:
                    a = left(ctx, st)
                    try:
                        return a >= c
                    except TypeError:
                        raise _stamp(ops.compare_error(op, a, c), pos) from None

                return ge_c
            if op == ">":

                def gt_c(ctx: Mapping[str, Any], st: EvalState) -> Any:
                    a = left(ctx, st)
                    try:
                        return a > c
                    except TypeError:
                        raise _stamp(ops.compare_error(op, a, c), pos) from None

                return gt_c
            if op == "<=":

                def le_c(ctx: Mapping[str, Any], st: EvalState) -> Any:
                    a = left(ctx, st)
                    try:
                        return a <= c
                    except TypeError:
                        raise _stamp(ops.compare_error(op, a, c), pos) from None

                return le_c

            def lt_c(ctx: Mapping[str, Any], st: EvalState) -> Any:
                a = left(ctx, st)
                try:
                    return a < c
                except TypeError:
                    raise _stamp(ops.compare_error(op, a, c), pos) from None

            return lt_c

        def compare(ctx: Mapping[str, Any], st: EvalState) -> Any:
            try:
                return ops.compare(op, left(ctx, st), right(ctx, st))
            except ExpressionError as e:
                raise _stamp(e, pos) from None

        return compare

    if op in ("in", "not in"):
        negate = op == "not in"
        if isinstance(node.right, ListExpr) and all(_const(i)[0] for i in node.right.items):
            members = tuple(_const(i)[1] for i in node.right.items)

            def in_const(ctx: Mapping[str, Any], st: EvalState) -> Any:
                return (left(ctx, st) in members) is not negate

            return in_const

        def in_(ctx: Mapping[str, Any], st: EvalState) -> Any:
            item = left(ctx, st)
            container = right(ctx, st)
            if type(container) is list:  # list membership never raises: skip the helper
                return (item in container) is not negate
            try:
                return ops.contains(item, container) is not negate
            except ExpressionError as e:
                raise _stamp(e, pos) from None

        return in_

    if op in ("is", "is not"):
        negate = op == "is not"
        return lambda ctx, st: ops.identical(left(ctx, st), right(ctx, st)) is not negate

    arith = {
        "+": ops.add,
        "-": ops.subtract,
        "*": ops.multiply,
        "/": ops.divide,
        "%": ops.modulo,
    }[op]

    def arithmetic(ctx: Mapping[str, Any], st: EvalState) -> Any:
        try:
            return arith(st, left(ctx, st), right(ctx, st))
        except ExpressionError as e:
            raise _stamp(e, pos) from None

    return arithmetic


def _compile_call(node: Call) -> Evaluator:
    info = FUNCTIONS[node.name]
    impl = info.impl
    arg_fns = tuple(compile_node(a) for a in node.args)
    name, pos, broadcast = node.name, node.pos, node.broadcast
    needs_state = info.needs_state
    check = info.check_args

    def call(ctx: Mapping[str, Any], st: EvalState) -> Any:
        args = [f(ctx, st) for f in arg_fns]
        st.charge(1)
        try:
            if broadcast:
                result = _broadcast(info, st, args, impl)
            else:
                check(args)
                result = impl(st, *args) if needs_state else impl(*args)
        except ExpressionError as e:
            if isinstance(e, EvaluationError) and not e.message.startswith("FN."):
                e.message = f"FN.{name}: {e.message}"
                e.args = (e.message,)
            raise _stamp(e, pos) from None
        except RecursionError:
            raise _stamp(BudgetExceededError(f"FN.{name}: data nested too deeply"), pos) from None
        except TimeoutError:
            raise _stamp(BudgetExceededError(f"FN.{name}: time limit exceeded"), pos) from None
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            ArithmeticError,
            UnicodeError,
            LookupError,
        ) as e:
            raise _stamp(EvaluationError(f"FN.{name}: {e}"), pos) from None
        if isinstance(result, str | list | dict) and len(result) > st.budget.max_output_bytes:
            raise _stamp(
                BudgetExceededError(
                    f"FN.{name}: result of {len(result)} chars/items is over the limit of "
                    f"{st.budget.max_output_bytes}"
                ),
                pos,
            )
        return result

    return call


# --- the compiled expression -----------------------------------------------------------


def run_guarded(fn: Evaluator, ctx: Mapping[str, Any], st: EvalState, source: str) -> Any:
    """Run a closure, turning every failure into an ExpressionError carrying ``source``."""
    try:
        return fn(ctx, st)
    except ExpressionError as e:
        if isinstance(e, EvaluationError) and e.source is None:
            e.source = source
        raise
    except RecursionError:
        raise BudgetExceededError("evaluation nested too deeply", source=source) from None
    except MemoryError:
        raise BudgetExceededError("evaluation ran out of memory", source=source) from None
    except Exception as e:  # a bug or an exotic value: still the package's own error
        raise EvaluationError(f"evaluation failed: {type(e).__name__}: {e}", source=source) from e


class Expression:
    """A compiled expression: evaluate it many times against different contexts."""

    __slots__ = ("source", "references", "_fn", "_stateful", "_node")

    def __init__(self, source: str, node: Node, fn: Evaluator, references: References):
        self.source = source
        self.references = references
        self._node = node
        self._fn = fn
        self._stateful = _needs_state(node)

    def evaluate(self, context: Mapping[str, Any], *, budget: Budget | None = None) -> Any:
        """The value of the expression in ``context``; raises ExpressionError only."""
        try:
            return self._fn(context, EvalState(budget) if self._stateful else None)  # type: ignore[arg-type]
        except ExpressionError as e:
            if isinstance(e, EvaluationError) and e.source is None:
                e.source = self.source
            raise
        except RecursionError:
            raise BudgetExceededError("evaluation nested too deeply", source=self.source) from None
        except MemoryError:
            raise BudgetExceededError("evaluation ran out of memory", source=self.source) from None
        except Exception as e:
            raise EvaluationError(
                f"evaluation failed: {type(e).__name__}: {e}", source=self.source
            ) from e

    def _eval(self, context: Mapping[str, Any], st: EvalState) -> Any:
        """Evaluate with a caller-owned state (templates share one per render)."""
        return run_guarded(self._fn, context, st, self.source)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _build(source: str, node: Node, cast: str | None, locals_: Iterable[str] = ()) -> Expression:
    try:
        fn = compile_node(node)
    except RecursionError:  # pragma: no cover - the parser bounds depth first
        raise ParseError("expression is too complex", source, 0) from None
    if cast is not None:
        inner, kind = fn, cast

        def cast_fn(ctx: Mapping[str, Any], st: EvalState) -> Any:
            return ops.cast(kind, inner(ctx, st))

        fn = cast_fn
    return Expression(source, node, fn, references_of(node, locals_))


def compile_expression(source: str) -> Expression:
    """Compile ``source`` (an expression without ``${{ }}``); raises ParseError."""
    if not isinstance(source, str):
        raise ParseError(f"expression source must be a string, got {type(source).__name__}")
    node, cast = _parse_guarded(source, parse_expression)
    return _build(source, node, cast)


def _parse_guarded(source: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(source)
    except RecursionError:
        raise ParseError("expression nested too deeply", source, 0) from None


def _strip_template(source: str) -> tuple[str, int]:
    text = source.strip()
    if text.startswith("${{") and text.endswith("}}"):
        start = source.index("${{") + 3
        return source[start : source.rindex("}}")], start
    return source, 0


def compile_iterator(source: str) -> tuple[str, Expression]:
    """Compile ``for var.<name> in <expr>`` (with or without ``${{ }}``) for ``for_each``.

    Returns ``(name, expression)``: bind each item of the expression's value to
    ``var.<name>`` in the per-iteration context.
    """
    inner, offset = _strip_template(source)
    try:
        name, node = _parse_guarded(inner, parse_iterator)
    except ParseError as e:
        raise (e.shifted(source, offset) if offset else e) from None
    return name, _build(inner, node, None)
