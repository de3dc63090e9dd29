"""``lambda x: <expr>`` written in the expression language, never in Python.

Tracecat's ``python_lambda`` ran real Python behind an AST deny-list and a
``__`` substring filter; string concatenation plus ``str.format`` attribute
traversal walked straight past both (tracecat.md §7). Here the lambda body is
parsed by *our* parser: parameters become extra path roots (``m['key']``,
``m.key``, ``m.items[*].x``), and the body can only do what expressions can do:
index dicts/lists/strings, call ``FN.*`` (with the safe ``format``), compare,
branch, and build literals. There are no attribute reads on Python objects, no
method calls, no comprehensions, no names beyond the parameters and contexts.

Common Python spellings are accepted where they mean the same thing: ``and``,
``or``, ``not``, ``x['k']``, ``len(x)``, ``str(x)``/``int(x)``, ``True``/``None``.

``Lambda.map``/``Lambda.filter`` run over a list with one shared budget, so a
big list cannot reset the step counter per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .budget import Budget, EvalState
from .compiler import References, compile_node, references_of, run_guarded
from .errors import EvaluationError, ParseError
from .parser import parse_lambda
from .typenames import type_name

__all__ = ["Lambda", "compile_lambda"]


class Lambda:
    """A compiled lambda. Call it like a function: ``fn(item, budget=...)``."""

    __slots__ = ("source", "params", "references", "_fn")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            params, node = parse_lambda(source)
        except RecursionError:
            raise ParseError("lambda nested too deeply", source, 0) from None
        self.params = params
        self._fn = compile_node(node)
        self.references: References = references_of(node, params)

    def _scope(self, args: tuple[Any, ...], context: Mapping[str, Any] | None) -> dict[str, Any]:
        if len(args) != len(self.params):
            raise EvaluationError(
                f"lambda takes {len(self.params)} argument(s), got {len(args)}",
                source=self.source,
            )
        scope = dict(context) if context else {}
        scope.update(zip(self.params, args, strict=True))
        return scope

    def _call(self, st: EvalState, args: tuple[Any, ...], context: Mapping[str, Any] | None) -> Any:
        st.charge(1)
        return run_guarded(self._fn, self._scope(args, context), st, self.source)

    def __call__(
        self,
        *args: Any,
        budget: Budget | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Apply to ``args``. ``context`` (TRIGGER, ACTIONS…) is visible to the body."""
        return self._call(EvalState(budget), args, context)

    def _unpack(self, item: Any) -> tuple[Any, ...]:
        """The arguments for one item of a multi-parameter map: the item must be a list.

        Not `tuple(item)`: on a number that raised TypeError, and a string or an object would
        have been split into characters or keys.
        """
        if not isinstance(item, list | tuple):
            raise EvaluationError(
                f"lambda with {len(self.params)} parameters maps over lists of "
                f"{len(self.params)} items, got {type_name(item)}",
                source=self.source,
            )
        return tuple(item)

    def _items(self, items: Any) -> Iterable[Any]:
        if items is None:
            return ()
        if not isinstance(items, list | tuple):
            raise EvaluationError(
                f"lambda map/filter needs a list, got {type_name(items)}", source=self.source
            )
        return items

    def map(
        self,
        items: Any,
        *,
        budget: Budget | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """``[fn(item) for item in items]`` under one budget (multi-param: items unpacked)."""
        st = EvalState(budget)
        items = self._items(items)
        if len(self.params) > 1:
            return [self._call(st, self._unpack(i), context) for i in items]
        # Hot path (the article's map): one reusable scope, one guarded call per item.
        fn, source, (param,) = self._fn, self.source, self.params
        scope = dict(context) if context else {}
        out = []
        for item in items:
            st.charge(1)
            scope[param] = item
            out.append(run_guarded(fn, scope, st, source))
        return out

    def filter(
        self,
        items: Any,
        *,
        budget: Budget | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Items for which the lambda is truthy, under one budget."""
        st = EvalState(budget)
        return [i for i in self._items(items) if self._call(st, (i,), context)]

    def __repr__(self) -> str:
        return f"Lambda({self.source!r})"


def compile_lambda(source: str) -> Lambda:
    """Compile ``lambda a[, b…]: <expression>``; raises ParseError."""
    if not isinstance(source, str):
        raise ParseError(f"lambda source must be a string, got {type(source).__name__}")
    return Lambda(source.strip())
