"""The expression language under hostile sources and hostile data.

tests/expressions/test_properties.py already feeds random text, token soup and well-formed
expressions on small JSON. This file adds what it does not reach: calls with the wrong number of
arguments and unknown names, nesting past the parser's limits, literals past the lexer's, broken
and nested string literals, `${{` inside strings, lambdas with map/filter, `for` iterators,
`compile_value` with templated keys, and data no alert should hold but one can (a 3000-level
nest, a 5000-digit integer, NaN, lone surrogates, long lists and strings).

Every entry point compiles or raises ParseError, evaluates or raises ExpressionError, always under
a small budget and within a time bound: no RecursionError, TypeError or hang gets out.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fuzz.strategies import FUZZ, json_values
from hypothesis import example, given
from hypothesis import strategies as st

from casefold.expressions import (
    FUNCTIONS,
    Budget,
    EvaluationError,
    ExpressionError,
    ParseError,
    compile_expression,
    compile_iterator,
    compile_lambda,
    compile_template,
    compile_value,
)
from casefold.expressions.templates import find_templates

# Small on purpose: a runaway must be stopped by a limit, not by the fuzzer's patience.
BUDGET = Budget(
    max_steps=5_000,
    max_output_bytes=50_000,
    max_depth=32,
    regex_timeout=0.01,
    max_total_bytes=200_000,
)
# Far above what any bounded evaluation takes here (milliseconds), far below a hang.
SECONDS = 5.0

# --- sources ---------------------------------------------------------------------------------

HUGE_LITERALS = st.one_of(
    st.builds(lambda n: "9" * n, st.integers(300, 500)),  # the lexer's limit is 400 digits
    st.sampled_from(["1e999", "-1e999", "1e-999", "0.1e400", "1" + "0" * 399, "٣", "1٣.٥"]),
    st.builds(lambda n: "'" + "x" * n + "'", st.integers(1_000, 120_000)),  # limit: 100_000
    st.builds(lambda n: "'" + "\\u00e9" * n + "'", st.integers(1, 5_000)),
)
STRING_LITERALS = st.sampled_from(
    ["'a'", "''", '"b"', "'}}'", "'${{'", "'${{ TRIGGER }}'", "'\\''", "'\\\\'", "'\\ud800'",
     "'\\U0010FFFF'", "'\\U00110000'", "'\\x'", "'\\n\\t\\0'", '"\\"${{ \\""', "'a' 'b'"]
)  # fmt: skip
BROKEN = st.sampled_from(
    ["'unterminated", '"also', "'\\", "}}", "${{", "${{ 1 }}", "=", "!", "1 +", "(", ")", "[",
     "]", "{", "FN.", "FN.length", "FN.length.map", "FN.length.nope(1)", "x ->", "-> int",
     "TRIGGER.", "TRIGGER..", "TRIGGER[?]", "TRIGGER[1:2:0]", "SECRETS.a", "VARS", "@",
     "lambda x: x", "for var.x in TRIGGER", "__class__", "TRIGGER.__dict__", "\x00", "\u2028"]
)  # fmt: skip
SEGMENTS = st.sampled_from(
    [".a", ".b", ".in", ".'k-1'", "[0]", "[-1]", "[*]", ".*", "..a", "..*", "[0:2]", "[::-1]",
     "[1:2:0]", "['k']", "[?(@.a > 1)]", "[?b == 'x']", "[?@ in [1, 2]]", "[?a & b | c]"]
)  # fmt: skip
OPERATORS = st.sampled_from(
    ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not",
     "&&", "||", "and", "or"]
)  # fmt: skip
NAMES = sorted(FUNCTIONS)
CHAIN_OPERANDS = ["1", "2.5", "'s'", "TRIGGER.a", "var.x", "[1]", "None", "FN.length('ab')"]
# Wrappers that each add a level of nesting, to go past MAX_NESTING and MAX_AST_DEPTH.
WRAPPERS = [("(", ")"), ("[", "]"), ("not ", ""), ("-", ""), ("FN.length([", "])"), ("{1: ", "}")]


@st.composite
def sources(draw: st.DrawFn, depth: int = 0) -> str:
    """Expression sources: mostly plausible, with every kind of edge mixed in."""
    # Wrapping and chaining (10, 11) multiply the size of what they contain, so only the
    # outermost level may use them: nested, they would build megabytes of source.
    kind = draw(st.integers(0, 3 if depth > 3 else 9 if depth else 11))
    sub = sources(depth + 1)
    if kind == 0:
        root = draw(st.sampled_from(["TRIGGER", "ACTIONS.a.result", "var", "VARS.v", "ENV"]))
        return root + "".join(draw(st.lists(SEGMENTS, max_size=4)))
    if kind == 1:
        return draw(st.one_of(STRING_LITERALS, st.sampled_from(["0", "-1", "2.5", "True", "None"])))
    if kind == 2:
        return draw(st.one_of(HUGE_LITERALS, BROKEN))
    if kind == 3:
        return repr(draw(st.text(max_size=10)))
    if kind == 4:
        return f"({draw(sub)} {draw(OPERATORS)} {draw(sub)})"
    if kind == 5:
        return f"({draw(sub)} if {draw(sub)} else {draw(sub)})"
    if kind == 6:
        cast = draw(st.sampled_from(["int", "str", "bool", "float", "len", "abs"]))
        return f"{cast}({draw(sub)})"
    if kind == 7:
        return f"({draw(sub)})" + draw(st.sampled_from(["[0]", "[1:]", "[::2]", ".a", "['a']"]))
    if kind == 8:
        # any number of arguments, whatever the function takes, and unknown names now and then
        name = draw(st.one_of(st.sampled_from(NAMES), st.sampled_from(["nope", "eval", "map"])))
        args = draw(st.lists(sub, max_size=5))
        dot = ".map" if draw(st.integers(0, 4)) == 0 else ""
        return f"FN.{name}{dot}({', '.join(args)})"
    if kind == 9:
        items = draw(st.lists(sub, max_size=3))
        if draw(st.booleans()):
            return "[" + ", ".join(items) + "]"
        return "{" + ", ".join(f"{i}: {i}" for i in items) + "}"
    if kind == 10:
        opening, closing = draw(st.sampled_from(WRAPPERS))
        n = draw(st.integers(30, 400))
        return opening * n + draw(sub) + closing * n
    # a long flat chain, around MAX_AST_DEPTH operands: a deep tree without deep parser recursion
    operands = [draw(sub), *draw(st.lists(st.sampled_from(CHAIN_OPERANDS), min_size=100))]
    return f" {draw(OPERATORS)} ".join(operands * draw(st.integers(1, 2)))


@st.composite
def full_sources(draw: st.DrawFn) -> str:
    source = draw(sources())
    if draw(st.integers(0, 5)) == 0:
        source += " -> " + draw(st.sampled_from(["int", "str", "bool", "float", "list"]))
    return source


# --- data --------------------------------------------------------------------------------------

# Hostile values are described, then built inside the test: Hypothesis prints failing arguments,
# and printing a 3000-level nest would itself hit the recursion limit.
HOSTILE_NAMES = (
    "deep_list", "deep_dict", "huge_int", "nan", "inf", "surrogate", "long_list", "long_text",
    "int_keys", "none",
)  # fmt: skip
HOSTILE = st.sampled_from(HOSTILE_NAMES)


def hostile(name: str) -> Any:
    if name in ("deep_list", "deep_dict"):
        value: Any = 1
        for _ in range(3000):
            value = [value] if name == "deep_list" else {"a": value}
        return value
    return {
        "huge_int": 10**5000,
        "nan": float("nan"),
        "inf": float("inf"),
        "surrogate": "a\ud800b",
        "long_list": list(range(20_000)),
        "long_text": "ab" * 60_000,
        "int_keys": {1: "a", 2.5: "b", None: "c", False: "d"},
        "none": None,
    }[name]


Spec = tuple[Any, str | None, str]  # (JSON value, hostile TRIGGER or None, hostile extra)


def context(spec: Spec) -> dict[str, Any]:
    """The playbook context for a drawn spec: JSON where alerts go, hostile data beside it."""
    value, trigger, extra = spec
    return {
        "TRIGGER": value if trigger is None else hostile(trigger),
        "ACTIONS": {"a": {"result": value}, "b": {"result": hostile(extra)}},
        "var": {"x": value},
        "VARS": {"v": value},
        "ENV": {},
        "SECRETS": {},
    }


SPECS = st.tuples(json_values, st.one_of(st.none(), HOSTILE), HOSTILE)
NO_DATA: Spec = (None, None, "none")


def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `fn`; only the language's own errors may come out, and quickly."""
    started = time.monotonic()
    try:
        return fn(*args, **kwargs)
    except ExpressionError as exc:
        assert str(exc)  # the message renders (caret, position) without raising
        if isinstance(exc, ParseError):
            assert exc.line >= 1 and exc.column >= 1
        return exc
    finally:
        elapsed = time.monotonic() - started
        assert elapsed < SECONDS, f"{getattr(fn, '__name__', fn)} took {elapsed:.1f}s"


# --- properties --------------------------------------------------------------------------------


@FUZZ
@given(source=full_sources(), spec=SPECS)
@example(source="(" * 5000 + "1" + ")" * 5000, spec=NO_DATA)
@example(source="1" + " + 1" * 20_000, spec=NO_DATA)
@example(source="'" + "\\" * 999, spec=NO_DATA)
@example(source="FN.length" + ".map" * 3 + "(1)", spec=NO_DATA)
@example(source="TRIGGER == TRIGGER", spec=(None, "deep_list", "deep_dict"))
@example(source="FN.serialize_json(TRIGGER) + str(ACTIONS.b.result)", spec=(1, "huge_int", "nan"))
def test_expressions(source: str, spec: Spec) -> None:
    expr = timed(compile_expression, source)
    if isinstance(expr, ExpressionError):
        assert isinstance(expr, ParseError)
        return
    timed(expr.evaluate, context(spec), budget=BUDGET)


@FUZZ
@given(
    pieces=st.lists(
        st.one_of(st.text(max_size=8), full_sources().map(lambda s: f"${{{{{s}}}}}")), max_size=4
    ),
    spec=SPECS,
)
@example(pieces=["${{ '}}' }}", "${{ {'a': {'b': 1}} }}"], spec=NO_DATA)
@example(pieces=["${{ 1 ", "${{ '"], spec=NO_DATA)
@example(pieces=["x ${{ TRIGGER }}"], spec=(None, "deep_list", "none"))
def test_templates(pieces: list[str], spec: Spec) -> None:
    text = "".join(pieces)
    template = timed(compile_template, text)
    if isinstance(template, ExpressionError):
        assert isinstance(template, ParseError)
        return
    rendered = timed(template.render, context(spec), budget=BUDGET)
    parts = find_templates(text)
    typed = len(parts) == 1 and not isinstance(parts[0], str)
    if not typed and not isinstance(rendered, ExpressionError):
        assert isinstance(rendered, str)  # text around a template renders to text


@st.composite
def args_values(draw: st.DrawFn) -> Any:
    """An `args`-shaped value: templates in strings, in keys, nested in lists and objects."""
    template = full_sources().map(lambda s: f"${{{{ {s} }}}}")
    leaf = st.one_of(template, st.text(max_size=5), json_values)
    key = st.one_of(template, st.sampled_from(["a", "b", "${{ TRIGGER }}", "${{ 1 }}"]))
    return draw(
        st.recursive(
            leaf,
            lambda c: st.lists(c, max_size=3) | st.dictionaries(key, c, max_size=3),
            max_leaves=6,
        )
    )


@FUZZ
@given(value=args_values(), spec=SPECS)
@example(value={"${{ TRIGGER }}": 1}, spec=(None, "deep_list", "none"))
@example(
    value={"${{ TRIGGER }}": 1, "${{ ACTIONS.b.result }}": 2}, spec=(0, "huge_int", "huge_int")
)
def test_values(value: Any, spec: Spec) -> None:
    """Found by fuzzing: a key that rendered to a deep list or a 5000-digit int raised
    RecursionError / ValueError while its error message was being written."""
    compiled = timed(compile_value, value)
    if isinstance(compiled, ExpressionError):
        assert isinstance(compiled, ParseError)
        return
    timed(compiled.render, context(spec), budget=BUDGET)


PARAMS = st.sampled_from(["x", "a, b", "m", "x, y, z", "item", "TRIGGER", "x, x", "", "1"])


@FUZZ
@given(params=PARAMS, body=full_sources(), items=st.one_of(json_values, HOSTILE), spec=SPECS)
@example(params="a, b", body="a", items=[1, 2], spec=NO_DATA)
@example(params="a, b", body="a", items=["ab", {"k": 1}, None], spec=NO_DATA)
def test_lambdas(params: str, body: str, items: Any, spec: Spec) -> None:
    """Found by fuzzing: a two-parameter lambda mapped over scalars raised TypeError."""
    fn = timed(compile_lambda, f"lambda {params}: {body}")
    if isinstance(fn, ExpressionError):
        assert isinstance(fn, ParseError)
        return
    ctx = context(spec)
    if isinstance(items, str) and items in HOSTILE_NAMES:
        items = hostile(items)
    timed(fn.map, items, budget=BUDGET, context=ctx)
    timed(fn.filter, items, budget=BUDGET, context=ctx)
    timed(fn, *([items] * len(fn.params)), budget=BUDGET, context=ctx)
    wrong = timed(fn, *([items] * (len(fn.params) + 1)), budget=BUDGET)
    assert isinstance(wrong, EvaluationError)


@FUZZ
@given(
    name=st.one_of(st.just("x"), st.text(max_size=4)),
    source=full_sources(),
    wrapped=st.booleans(),
    spec=SPECS,
)
def test_iterators(name: str, source: str, wrapped: bool, spec: Spec) -> None:
    text = f"for var.{name} in {source}"
    compiled = timed(compile_iterator, f"${{{{ {text} }}}}" if wrapped else text)
    if isinstance(compiled, ExpressionError):
        assert isinstance(compiled, ParseError)
        return
    loop_var, expr = compiled
    assert isinstance(loop_var, str) and loop_var
    timed(expr.evaluate, context(spec), budget=BUDGET)


# --- regressions, stated plainly -----------------------------------------------------------------


def test_a_multi_parameter_map_takes_lists_only() -> None:
    fn = compile_lambda("lambda a, b: a")
    assert fn.map([[1, 2], (3, 4)]) == [1, 3]
    with pytest.raises(EvaluationError, match="lists of 2 items, got integer"):
        fn.map([[1, 2], 3])  # was TypeError: 'int' object is not iterable
    with pytest.raises(EvaluationError, match="got string"):
        fn.map(["ab"])  # was split into the characters "a" and "b"


def test_templated_keys_are_described_without_their_repr() -> None:
    deep = hostile("deep_list")
    with pytest.raises(EvaluationError, match="unhashable value: <list>"):
        compile_value({"${{ TRIGGER }}": 1}).render({"TRIGGER": deep})  # was RecursionError
    twice = compile_value({"${{ TRIGGER }}": 1, "${{ VARS.v }}": 2})
    with pytest.raises(EvaluationError, match="two keys render to <integer>"):
        twice.render({"TRIGGER": 10**5000, "VARS": {"v": 10**5000}})  # was ValueError
    with pytest.raises(EvaluationError, match="two keys render to 'k'"):
        twice.render({"TRIGGER": "k", "VARS": {"v": "k"}})
