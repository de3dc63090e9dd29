"""AST node types produced by the parser and consumed by the compiler.

Nodes are small slotted dataclasses. Every node records ``pos`` (0-based offset
into the source) so evaluation errors can point at the failing sub-expression.
``children()`` lets tools (depth check, reference extraction) walk a tree
iteratively, never recursively, because hostile sources can be very deep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Binary",
    "Call",
    "Cast",
    "DescendSeg",
    "DictExpr",
    "FilterSeg",
    "Index",
    "IndexSeg",
    "KeySeg",
    "ListExpr",
    "Literal",
    "Logical",
    "Node",
    "Path",
    "Segment",
    "SliceSeg",
    "Ternary",
    "Unary",
    "WildSeg",
    "walk",
]


# --- path segments ---------------------------------------------------------------------


@dataclass(slots=True)
class KeySeg:
    """``.name`` or ``['quoted']``."""

    key: str


@dataclass(slots=True)
class IndexSeg:
    """``[0]`` / ``[-1]``."""

    index: int


@dataclass(slots=True)
class WildSeg:
    """``.*`` / ``[*]``."""


@dataclass(slots=True)
class SliceSeg:
    """``[start:stop:step]``."""

    start: int | None
    stop: int | None
    step: int | None


@dataclass(slots=True)
class FilterSeg:
    """``[?predicate]``; ``@`` (or a bare name) is the item under test."""

    predicate: Node


@dataclass(slots=True)
class DescendSeg:
    """``..name`` (``key`` set) or ``..*`` (``key`` None): recursive descent."""

    key: str | None


Segment = KeySeg | IndexSeg | WildSeg | SliceSeg | FilterSeg | DescendSeg


# --- expression nodes ------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    pos: int

    def children(self) -> Iterator[Node]:
        return iter(())


@dataclass(slots=True)
class Literal(Node):
    value: Any


@dataclass(slots=True)
class ListExpr(Node):
    items: list[Node]

    def children(self) -> Iterator[Node]:
        return iter(self.items)


@dataclass(slots=True)
class DictExpr(Node):
    pairs: list[tuple[Node, Node]]

    def children(self) -> Iterator[Node]:
        for k, v in self.pairs:
            yield k
            yield v


@dataclass(slots=True)
class Path(Node):
    """A context root (``TRIGGER``…), a lambda parameter, or ``@``, plus segments."""

    root: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def is_multi(self) -> bool:
        """Wildcards, slices, filters and recursive descent always yield a list."""
        return any(not isinstance(s, KeySeg | IndexSeg) for s in self.segments)

    def children(self) -> Iterator[Node]:
        for s in self.segments:
            if isinstance(s, FilterSeg):
                yield s.predicate


@dataclass(slots=True)
class Index(Node):
    """Postfix ``base[expr]``, ``base[a:b]`` or ``base.name`` on any base."""

    base: Node
    index: Node | None
    slice: tuple[Node | None, Node | None, Node | None] | None = None

    def children(self) -> Iterator[Node]:
        yield self.base
        if self.index is not None:
            yield self.index
        if self.slice is not None:
            yield from (n for n in self.slice if n is not None)


@dataclass(slots=True)
class Call(Node):
    name: str
    args: list[Node]
    broadcast: bool = False  # FN.name.map(...)

    def children(self) -> Iterator[Node]:
        return iter(self.args)


@dataclass(slots=True)
class Unary(Node):
    op: str  # '-', '+', 'not'
    operand: Node

    def children(self) -> Iterator[Node]:
        yield self.operand


@dataclass(slots=True)
class Binary(Node):
    op: str  # == != < <= > >= in 'not in' is 'is not' + - * / %
    left: Node
    right: Node

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right


@dataclass(slots=True)
class Logical(Node):
    op: str  # 'and' / 'or'
    left: Node
    right: Node

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right


@dataclass(slots=True)
class Ternary(Node):
    then: Node
    cond: Node
    other: Node

    def children(self) -> Iterator[Node]:
        yield self.then
        yield self.cond
        yield self.other


@dataclass(slots=True)
class Cast(Node):
    type: str  # int, float, str, bool
    operand: Node

    def children(self) -> Iterator[Node]:
        yield self.operand


def walk(node: Node) -> Iterator[tuple[Node, int]]:
    """Yield ``(node, depth)`` for every node, iteratively (depth of root is 1)."""
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        n, d = stack.pop()
        yield n, d
        stack.extend((c, d + 1) for c in n.children())
