"""Property tests: malformed input only ever raises the package's own errors.

Like jmespath's ``extra/test_hypothesis.py``: (1) any text either compiles or
raises ParseError; (2) any compiled expression, evaluated on arbitrary JSON,
returns or raises ExpressionError, never a raw Python exception.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casefold.expressions import (
    FUNCTIONS,
    Budget,
    ExpressionError,
    ParseError,
    compile_expression,
    compile_lambda,
    compile_template,
    compile_value,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUDGET = Budget(max_steps=20_000, max_output_bytes=100_000, regex_timeout=0.02)

TOKENS = [
    "TRIGGER",
    "ACTIONS",
    "SECRETS",
    "VARS",
    "ENV",
    "var",
    "FN",
    "@",
    ".",
    "..",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "*",
    "?",
    "+",
    "-",
    "/",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "&",
    "|",
    "->",
    "not",
    "in",
    "is",
    "if",
    "else",
    "and",
    "or",
    "True",
    "False",
    "None",
    "null",
    "int",
    "str",
    "bool",
    "float",
    "lambda",
    "for",
    "x",
    "a",
    "result",
    "0",
    "-1",
    "1.5",
    "'s'",
    '"d"',
    "'}}'",
    "${{",
    "}}",
    "lookup",
    "join",
    "map",
    "len",
    "'\\n'",
    "'\\u00e9'",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["a", "b", "result", "x", "0", "k-1"]) | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
contexts = st.fixed_dictionaries(
    {
        "TRIGGER": json_values,
        "ACTIONS": st.dictionaries(
            st.sampled_from(["a", "b"]), st.fixed_dictionaries({"result": json_values}), max_size=2
        ),
        "var": json_values,
    }
)


def _call_source(draw: Any, name: str, args: list[str]) -> str:
    return f"FN.{name}({', '.join(args)})"


@st.composite
def expressions(draw: Any, depth: int = 0) -> str:
    """Syntactically plausible expressions mixing every construct."""
    if depth > 3:
        choice = draw(st.integers(0, 2))
    else:
        choice = draw(st.integers(0, 9))
    if choice == 0:
        root = draw(st.sampled_from(["TRIGGER", "ACTIONS.a.result", "ACTIONS.b", "var"]))
        segs = draw(
            st.lists(
                st.sampled_from(
                    [
                        ".a",
                        ".b",
                        ".result",
                        "[0]",
                        "[-1]",
                        "[*]",
                        ".*",
                        "..a",
                        "[0:2]",
                        "['k-1']",
                        "[?(@.a > 1)]",
                        "[?b == 'x']",
                    ]
                ),
                max_size=4,
            )
        )
        return root + "".join(segs)
    if choice == 1:
        return draw(
            st.sampled_from(
                [
                    "1",
                    "0",
                    "-3",
                    "2.5",
                    "'a'",
                    "'}}'",
                    "''",
                    "True",
                    "None",
                    "[]",
                    "{}",
                    "[1, 'a']",
                    "{'a': 1}",
                ]
            )
        )
    if choice == 2:
        return repr(draw(st.text(max_size=8)))
    sub = expressions(depth + 1)
    if choice == 3:
        op = draw(
            st.sampled_from(
                [
                    "+",
                    "-",
                    "*",
                    "/",
                    "%",
                    "==",
                    "!=",
                    "<",
                    ">=",
                    "in",
                    "not in",
                    "is",
                    "is not",
                    "&&",
                    "||",
                ]
            )
        )
        return f"({draw(sub)} {op} {draw(sub)})"
    if choice == 4:
        return f"({draw(sub)} if {draw(sub)} else {draw(sub)})"
    if choice == 5:
        return f"{draw(st.sampled_from(['not ', '-', '+']))}({draw(sub)})"
    if choice == 6:
        return f"{draw(st.sampled_from(['int', 'str', 'bool', 'float']))}({draw(sub)})"
    if choice == 7:
        return f"({draw(sub)})[{draw(sub)}]"
    name = draw(st.sampled_from(sorted(FUNCTIONS)))
    info = FUNCTIONS[name]
    hi = info.max_args if info.max_args is not None else info.min_args + 2
    n = draw(st.integers(info.min_args, min(hi, 4)))
    args = [draw(sub) for _ in range(n)]
    suffix = ".map" if choice == 9 and draw(st.booleans()) else ""
    return f"FN.{name}{suffix}({', '.join(args)})"


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_compiles_or_raises_parse_error(source: str) -> None:
    try:
        compile_expression(source)
    except ParseError:
        pass


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join))
def test_token_soup_compiles_or_raises_parse_error(source: str) -> None:
    try:
        compile_expression(source)
    except ParseError:
        pass


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("${}'\"\\ ab1.+[]()")), max_size=60))
def test_any_template_text_compiles_or_raises_parse_error(text: str) -> None:
    try:
        compile_template(text)
    except ParseError:
        pass


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=20).map(lambda t: "lambda x: " + " ".join(t)))
def test_lambda_soup_compiles_or_raises_parse_error(source: str) -> None:
    try:
        compile_lambda(source)
    except ParseError:
        pass


@SETTINGS
@given(expressions(), contexts)
def test_evaluation_returns_or_raises_expression_error(source: str, ctx: dict[str, Any]) -> None:
    try:
        expr = compile_expression(source)
    except ParseError:
        return
    try:
        expr.evaluate(ctx, budget=BUDGET)
    except ExpressionError:
        pass


@SETTINGS
@given(expressions(), contexts)
def test_templates_and_values_render_or_raise_expression_error(
    source: str, ctx: dict[str, Any]
) -> None:
    try:
        value = compile_value({"k": f"x ${{{{ {source} }}}} y", "t": f"${{{{ {source} }}}}"})
    except ParseError:
        return
    try:
        out = value.render(ctx, budget=BUDGET)
    except ExpressionError:
        return
    assert isinstance(out["k"], str)
