"""Source → AST: a hand-written Pratt (precedence-climbing) parser.

Why not lark: Tracecat's LALR grammar works, but its tree walk is recursive and
its error positions are coarse. A Pratt parser (as in jmespath) keeps precedence
in one table, produces exact offsets for the caret, and uses at most a few
Python frames per nesting level, so nesting can be bounded explicitly:

* ``MAX_NESTING`` bounds bracket/paren/unary nesting during parsing;
* ``MAX_AST_DEPTH`` bounds the finished tree (``1+1+1+…`` builds a deep
  left-leaning tree without parser recursion), checked iteratively.

Both raise :class:`ParseError`, never ``RecursionError``.

Precedence, loosest first (Tracecat §1.4): ternary ``a if c else b`` → ``||`` →
``&&`` → ``not`` → comparisons (left-assoc, no chaining) → ``in``/``not in`` →
``is``/``is not`` → ``+ -`` → ``* / %`` → unary ``- +`` → postfix ``[ ]`` → atoms.
``and``/``or`` are accepted as spellings of ``&&``/``||`` (Python lambdas use
them); inside ``[? ]`` filters ``&``/``|`` are too (JSONPath habit).
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ArityError, ParseError, UnknownFunctionError
from .functions import FUNCTIONS
from .lexer import Token, tokenize
from .nodes import (
    Binary,
    Call,
    Cast,
    DescendSeg,
    DictExpr,
    FilterSeg,
    Index,
    IndexSeg,
    KeySeg,
    ListExpr,
    Literal,
    Logical,
    Node,
    Path,
    Segment,
    SliceSeg,
    Ternary,
    Unary,
    WildSeg,
    walk,
)

__all__ = [
    "CAST_TYPES",
    "CONTEXT_ROOTS",
    "MAX_AST_DEPTH",
    "MAX_NESTING",
    "Parser",
    "parse_expression",
    "parse_iterator",
    "parse_lambda",
]

CONTEXT_ROOTS = frozenset({"TRIGGER", "ACTIONS", "SECRETS", "VARS", "ENV", "var"})
CAST_TYPES = frozenset({"int", "float", "str", "bool"})
_LITERALS = {
    "True": True,
    "False": False,
    "None": None,
    "true": True,
    "false": False,
    "null": None,
}
_KEYWORDS = frozenset(
    {"if", "else", "in", "not", "is", "and", "or", "for", "lambda", "FN", *_LITERALS}
)
#: Python builtins accepted inside expressions as spellings of FN functions.
_BUILTIN_ALIASES = {"len": "length", "abs": "abs"}

MAX_NESTING = 64
MAX_AST_DEPTH = 160

# Binding powers of infix operators (higher binds tighter).
_BP_TERNARY = 1
_BP_OR = 2
_BP_AND = 3
_BP_NOT = 4  # operand of prefix `not` is parsed above this
_BP_CMP = 5
_BP_IN = 6
_BP_IS = 7
_BP_ADD = 8
_BP_MUL = 9
_BP_UNARY = 10

_INFIX_OPS = {
    "||": ("or", _BP_OR),
    "&&": ("and", _BP_AND),
    "==": ("==", _BP_CMP),
    "!=": ("!=", _BP_CMP),
    "<": ("<", _BP_CMP),
    "<=": ("<=", _BP_CMP),
    ">": (">", _BP_CMP),
    ">=": (">=", _BP_CMP),
    "+": ("+", _BP_ADD),
    "-": ("-", _BP_ADD),
    "*": ("*", _BP_MUL),
    "/": ("/", _BP_MUL),
    "%": ("%", _BP_MUL),
}
_FILTER_OPS = {"&": ("and", _BP_AND), "|": ("or", _BP_OR)}


class Parser:
    """Parses one source string. Instances are single-use."""

    def __init__(self, source: str, names: Iterable[str] = ()) -> None:
        self.source = source
        self.tokens: list[Token] = tokenize(source)
        self.i = 0
        self.depth = 0
        self.filter_depth = 0
        self.names = CONTEXT_ROOTS | frozenset(names)

    # --- token helpers -----------------------------------------------------------------

    def peek(self, k: int = 0) -> Token:
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else self.tokens[-1]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.peek()
        return ParseError(message, self.source, tok.pos)

    def describe(self, tok: Token) -> str:
        if tok.kind == "EOF":
            return "end of expression"
        if tok.kind == "STRING":
            return "string literal"
        return repr(str(tok.value))

    def is_op(self, value: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "OP" and tok.value == value

    def is_name(self, value: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "NAME" and tok.value == value

    def expect_op(self, value: str) -> Token:
        if not self.is_op(value):
            raise self.error(f"expected {value!r} but found {self.describe(self.peek())}")
        return self.advance()

    def expect_name(self, value: str) -> Token:
        if not self.is_name(value):
            raise self.error(f"expected {value!r} but found {self.describe(self.peek())}")
        return self.advance()

    # --- entry points --------------------------------------------------------------------

    def parse_root(self) -> tuple[Node, str | None]:
        """``expression`` optionally followed by one ``-> type`` cast."""
        node = self.parse_expr(0)
        cast = None
        if self.is_op("->"):
            self.advance()
            tok = self.peek()
            if tok.kind != "NAME" or tok.value not in CAST_TYPES:
                raise self.error("expected one of int, float, str, bool after '->'")
            self.advance()
            cast = str(tok.value)
        self.expect_end()
        return node, cast

    def expect_end(self) -> None:
        tok = self.peek()
        if tok.kind != "EOF":
            if tok.kind == "OP" and tok.value == "->":
                raise self.error("only one trailing '-> type' cast is allowed")
            raise self.error(f"unexpected {self.describe(tok)}")

    # --- Pratt core ------------------------------------------------------------------------

    def infix(self) -> tuple[str, int, int] | None:
        """(operator, binding power, tokens to consume) for the next token, if infix."""
        tok = self.peek()
        if tok.kind == "OP":
            op = _INFIX_OPS.get(tok.value)  # type: ignore[call-overload]
            if op is None and self.filter_depth:
                op = _FILTER_OPS.get(tok.value)  # type: ignore[call-overload]
            return (op[0], op[1], 1) if op else None
        if tok.kind != "NAME":
            return None
        word = tok.value
        if word == "if":
            return "if", _BP_TERNARY, 1
        if word == "or":
            return "or", _BP_OR, 1
        if word == "and":
            return "and", _BP_AND, 1
        if word == "in":
            return "in", _BP_IN, 1
        if word == "not" and self.is_name("in", 1):
            return "not in", _BP_IN, 2
        if word == "is":
            if self.is_name("not", 1):
                return "is not", _BP_IS, 2
            return "is", _BP_IS, 1
        return None

    def parse_expr(self, min_bp: int) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression nested deeper than {MAX_NESTING} levels")
        try:
            left = self.parse_prefix(min_bp)
            while True:
                op = self.infix()
                if op is None:
                    break
                name, bp, ntok = op
                if bp <= min_bp:
                    break
                tok = self.peek()
                self.i += ntok
                if name == "if":
                    cond = self.parse_expr(_BP_TERNARY)
                    self.expect_name("else")
                    other = self.parse_expr(0)
                    left = Ternary(tok.pos, left, cond, other)
                elif name in ("and", "or"):
                    left = Logical(tok.pos, name, left, self.parse_expr(bp))
                else:
                    left = Binary(tok.pos, name, left, self.parse_expr(bp))
            return left
        finally:
            self.depth -= 1

    def parse_prefix(self, min_bp: int) -> Node:
        tok = self.peek()
        if tok.kind == "NAME" and tok.value == "not":
            if min_bp > _BP_NOT:
                raise self.error("'not' must be parenthesised here")
            self.advance()
            return Unary(tok.pos, "not", self.parse_expr(_BP_NOT))
        if tok.kind == "OP" and tok.value in ("-", "+"):
            self.advance()
            operand = self.parse_expr(_BP_UNARY)
            if isinstance(operand, Literal) and type(operand.value) in (int, float):
                # Fold negative literals so `[-1]`-style constants stay constants.
                value = -operand.value if tok.value == "-" else operand.value
                return Literal(tok.pos, value)
            return Unary(tok.pos, str(tok.value), operand)
        return self.parse_postfix(self.parse_atom())

    # --- atoms -------------------------------------------------------------------------------

    def parse_atom(self) -> Node:
        tok = self.peek()
        kind, value = tok.kind, tok.value
        if kind in ("NUMBER", "STRING"):
            self.advance()
            return Literal(tok.pos, value)
        if kind == "OP":
            if value == "(":
                self.advance()
                node = self.parse_expr(0)
                self.expect_op(")")
                return node
            if value == "[":
                return self.parse_list()
            if value == "{":
                return self.parse_dict()
            if value == "@":
                if not self.filter_depth:
                    raise self.error("'@' is only valid inside a [?filter]")
                self.advance()
                return self.parse_path("@", tok.pos)
            raise self.error(f"unexpected {self.describe(tok)}")
        if kind == "NAME":
            word = str(value)
            if word in _LITERALS:
                self.advance()
                return Literal(tok.pos, _LITERALS[word])
            if word in CAST_TYPES and self.is_op("(", 1):
                self.advance()
                self.advance()
                operand = self.parse_expr(0)
                self.expect_op(")")
                return Cast(tok.pos, word, operand)
            if word == "FN":
                return self.parse_call()
            if word in _BUILTIN_ALIASES and self.is_op("(", 1) and word not in self.names:
                self.advance()
                return self.finish_call(tok, _BUILTIN_ALIASES[word], False)
            if word in self.names:
                self.advance()
                return self.parse_path(word, tok.pos)
            if self.filter_depth and word not in _KEYWORDS:
                # `[?sev > 5]` means `[?@.sev > 5]` (jsonpath-ng habit).
                self.advance()
                return Path(tok.pos, "@", [KeySeg(word), *self.parse_segments()])
            if word in _KEYWORDS:
                raise self.error(f"unexpected keyword {word!r}")
            raise self.error(
                f"unknown name {word!r}; expected a context "
                f"({', '.join(sorted(self.names))}), FN.<function>, or a literal"
            )
        raise self.error(f"unexpected {self.describe(tok)}")

    def parse_list(self) -> Node:
        start = self.expect_op("[")
        items: list[Node] = []
        while not self.is_op("]"):
            items.append(self.parse_expr(0))
            if not self.is_op(","):
                break
            self.advance()
        self.expect_op("]")
        return ListExpr(start.pos, items)

    def parse_dict(self) -> Node:
        start = self.expect_op("{")
        pairs: list[tuple[Node, Node]] = []
        while not self.is_op("}"):
            key = self.parse_expr(0)
            self.expect_op(":")
            pairs.append((key, self.parse_expr(0)))
            if not self.is_op(","):
                break
            self.advance()
        self.expect_op("}")
        return DictExpr(start.pos, pairs)

    def parse_call(self) -> Node:
        fn_tok = self.advance()  # FN
        self.expect_op(".")
        name_tok = self.peek()
        if name_tok.kind != "NAME":
            raise self.error("expected a function name after 'FN.'")
        self.advance()
        broadcast = False
        if self.is_op("."):
            self.advance()
            if not self.is_name("map"):
                raise self.error("the only function transform is '.map'")
            self.advance()
            broadcast = True
        if not self.is_op("("):
            raise self.error(f"expected '(' to call FN.{name_tok.value}")
        del fn_tok
        return self.finish_call(name_tok, str(name_tok.value), broadcast)

    def finish_call(self, name_tok: Token, name: str, broadcast: bool) -> Node:
        info = FUNCTIONS.get(name)
        if info is None:
            raise UnknownFunctionError(f"unknown function FN.{name}", self.source, name_tok.pos)
        self.expect_op("(")
        args: list[Node] = []
        while not self.is_op(")"):
            args.append(self.parse_expr(0))
            if not self.is_op(","):
                break
            self.advance()
        self.expect_op(")")
        n = len(args)
        if n < info.min_args or (info.max_args is not None and n > info.max_args):
            if info.max_args is None:
                want = f"at least {info.min_args}"
            elif info.min_args == info.max_args:
                want = str(info.min_args)
            else:
                want = f"{info.min_args} to {info.max_args}"
            raise ArityError(
                f"{info.signature} takes {want} argument(s), got {n}", self.source, name_tok.pos
            )
        return Call(name_tok.pos, name, args, broadcast)

    # --- paths ---------------------------------------------------------------------------------

    def parse_path(self, root: str, pos: int) -> Node:
        segments = self.parse_segments()
        path = Path(pos, root, segments)
        if root == "SECRETS":
            if len(segments) != 2 or not all(isinstance(s, KeySeg) for s in segments):
                raise ParseError("secrets are referenced as SECRETS.<name>.<KEY>", self.source, pos)
        elif root == "VARS":
            if not 1 <= len(segments) <= 2 or not all(isinstance(s, KeySeg) for s in segments):
                raise ParseError(
                    "variables are referenced as VARS.<name> or VARS.<name>.<key>",
                    self.source,
                    pos,
                )
        return path

    def parse_segments(self) -> list[Segment]:
        segments: list[Segment] = []
        while True:
            tok = self.peek()
            if tok.kind != "OP":
                return segments
            if tok.value == ".":
                nxt = self.peek(1)
                if nxt.kind in ("NAME", "STRING"):
                    self.i += 2
                    segments.append(KeySeg(str(nxt.value)))
                elif nxt.kind == "OP" and nxt.value == "*":
                    self.i += 2
                    segments.append(WildSeg())
                else:
                    raise self.error("expected a name, quoted name or '*' after '.'", nxt)
            elif tok.value == "..":
                nxt = self.peek(1)
                if nxt.kind in ("NAME", "STRING"):
                    self.i += 2
                    segments.append(DescendSeg(str(nxt.value)))
                elif nxt.kind == "OP" and nxt.value == "*":
                    self.i += 2
                    segments.append(DescendSeg(None))
                else:
                    raise self.error("expected a name or '*' after '..'", nxt)
            elif tok.value == "[":
                seg = self.parse_bracket_segment()
                if seg is None:
                    return segments
                segments.append(seg)
            else:
                return segments

    def _int_at(self, k: int) -> tuple[int | None, int]:
        """An optionally negative int literal at offset k: (value, tokens used)."""
        tok = self.peek(k)
        if tok.kind == "NUMBER" and type(tok.value) is int:
            return tok.value, 1
        if tok.kind == "OP" and tok.value == "-":
            nxt = self.peek(k + 1)
            if nxt.kind == "NUMBER" and type(nxt.value) is int:
                return -nxt.value, 2
        return None, 0

    def parse_bracket_segment(self) -> Segment | None:
        """A JSONPath bracket segment, or None if this ``[`` is a postfix index."""
        first = self.peek(1)
        if first.kind == "STRING" and self.is_op("]", 2):
            self.i += 3
            return KeySeg(str(first.value))
        if first.kind == "OP" and first.value == "*" and self.is_op("]", 2):
            self.i += 3
            return WildSeg()
        if first.kind == "OP" and first.value == "?":
            self.i += 2
            self.filter_depth += 1
            try:
                pred = self.parse_expr(0)
            finally:
                self.filter_depth -= 1
            self.expect_op("]")
            return FilterSeg(pred)
        value, used = self._int_at(1)
        if used and self.is_op("]", 1 + used):
            self.i += 2 + used
            return IndexSeg(value)  # type: ignore[arg-type]
        # Slice: [a:b], [:b], [a:], [a:b:c] with int literals only.
        k = 1
        parts: list[int | None] = []
        while True:
            value, used = self._int_at(k)
            parts.append(value)
            k += used
            if self.is_op(":", k) and len(parts) < 3:
                k += 1
                continue
            break
        if len(parts) >= 2 and self.is_op("]", k):
            self.i += k + 1
            while len(parts) < 3:
                parts.append(None)
            if parts[2] == 0:
                raise self.error("slice step cannot be zero")
            return SliceSeg(parts[0], parts[1], parts[2])
        return None

    # --- postfix -------------------------------------------------------------------------------

    def parse_postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok.kind != "OP":
                return node
            if tok.value == "[":
                self.advance()
                start: Node | None = None
                if not self.is_op(":"):
                    start = self.parse_expr(0)
                if self.is_op(":"):
                    self.advance()
                    stop = step = None
                    if not self.is_op("]") and not self.is_op(":"):
                        stop = self.parse_expr(0)
                    if self.is_op(":"):
                        self.advance()
                        if not self.is_op("]"):
                            step = self.parse_expr(0)
                    self.expect_op("]")
                    node = Index(tok.pos, node, None, (start, stop, step))
                else:
                    self.expect_op("]")
                    node = Index(tok.pos, node, start)
            elif tok.value == ".":
                nxt = self.peek(1)
                if nxt.kind not in ("NAME", "STRING"):
                    raise self.error("expected a name after '.'", nxt)
                self.i += 2
                node = Index(tok.pos, node, Literal(nxt.pos, str(nxt.value)))
            else:
                return node


def _check_depth(node: Node, source: str) -> None:
    for n, depth in walk(node):
        if depth > MAX_AST_DEPTH:
            raise ParseError(
                f"expression is too complex (more than {MAX_AST_DEPTH} levels)", source, n.pos
            )


def parse_expression(source: str, names: Iterable[str] = ()) -> tuple[Node, str | None]:
    """Parse ``source`` into (AST, trailing cast type or None)."""
    parser = Parser(source, names)
    if parser.peek().kind == "EOF":
        raise parser.error("empty expression")
    node, cast = parser.parse_root()
    _check_depth(node, source)
    return node, cast


def parse_iterator(source: str) -> tuple[str, Node]:
    """``for var.<name> in <expr>`` → (name, AST)."""
    parser = Parser(source)
    parser.expect_name("for")
    parser.expect_name("var")
    parser.expect_op(".")
    tok = parser.peek()
    if tok.kind != "NAME":
        raise parser.error("expected a loop variable name after 'var.'")
    parser.advance()
    parser.expect_name("in")
    node = parser.parse_expr(0)
    parser.expect_end()
    _check_depth(node, source)
    return str(tok.value), node


def parse_lambda(source: str) -> tuple[tuple[str, ...], Node]:
    """``lambda a, b: <expr>`` → (params, body AST)."""
    parser = Parser(source)
    parser.expect_name("lambda")
    params: list[str] = []
    while True:
        tok = parser.peek()
        if tok.kind != "NAME":
            raise parser.error("expected a parameter name")
        name = str(tok.value)
        if name in _KEYWORDS or name in CONTEXT_ROOTS or name in CAST_TYPES:
            raise parser.error(f"{name!r} cannot be a parameter name")
        if name in params:
            raise parser.error(f"duplicate parameter {name!r}")
        parser.advance()
        params.append(name)
        if not parser.is_op(","):
            break
        parser.advance()
    parser.expect_op(":")
    parser.names = parser.names | frozenset(params)
    node = parser.parse_expr(0)
    parser.expect_end()
    _check_depth(node, source)
    return tuple(params), node
