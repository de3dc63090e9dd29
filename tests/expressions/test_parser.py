"""Parser: positions, caret rendering, precedence, nesting bounds, references."""

from __future__ import annotations

import pytest

from casefold.expressions import (
    ArityError,
    ParseError,
    UnknownFunctionError,
    compile_expression,
    compile_iterator,
)
from casefold.expressions.nodes import Binary, Logical, Ternary, Unary
from casefold.expressions.parser import MAX_AST_DEPTH, MAX_NESTING, parse_expression


def error_of(source: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        compile_expression(source)
    return info.value


def test_error_records_line_column_and_caret():
    err = error_of("FN.join(x, 'a'")
    assert isinstance(err, ParseError)
    assert (err.line, err.column) == (1, 9)
    assert str(err).splitlines() == [
        "unknown name 'x'; expected a context (ACTIONS, ENV, SECRETS, TRIGGER, VARS, var), "
        "FN.<function>, or a literal at line 1, column 9:",
        "  FN.join(x, 'a'",
        "          ^",
    ]


def test_error_on_later_line():
    err = error_of("'a' if True\nelse ??")
    assert (err.line, err.column) == (2, 6)
    assert str(err).endswith("  else ??\n       ^")


def test_unterminated_string_position():
    err = error_of("1 + 'abc")
    assert err.column == 5 and "unterminated string" in err.message


def test_unknown_function_is_compile_error_with_position():
    with pytest.raises(UnknownFunctionError) as info:
        compile_expression("1 + FN.does_not_exist(2)")
    assert info.value.column == 8
    assert isinstance(info.value, ParseError)


def test_arity_is_checked_at_compile_time():
    with pytest.raises(ArityError, match=r"FN.lookup\(d, k\) takes 2 argument"):
        compile_expression("FN.lookup({'a': 1})")
    with pytest.raises(ArityError, match="at least 1"):
        compile_expression("FN.intersection()")
    compile_expression("FN.concat()")  # variadic, zero is fine


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty expression"),
        ("a = 1", "unexpected '='"),
        ("!x", "unexpected '!'"),
        ("1 +", "unexpected end"),
        ("(1", "expected ')'"),
        ("[1, 2", "expected ']'"),
        ("{'a' 1}", "expected ':'"),
        ("TRIGGER.", "after '.'"),
        ("TRIGGER.__class__", "'__'"),
        ("x.__globals__", "'__'"),
        ("@.x", "only valid inside"),
        ("1 2", "unexpected '2'"),
        ("1 -> int -> str", "only one trailing"),
        ("1 == not 2", "'not' must be parenthesised"),
        ("if", "unexpected keyword"),
        ("'a' if True", "expected 'else'"),
        ("FN.join.reduce([], '')", "only function transform"),
        ("9" * 500, "too long"),
    ],
)
def test_parse_errors(source, message):
    assert message in error_of(source).message


def test_precedence_shapes():
    node, _ = parse_expression("not 1 == 2 && 3 || 4")
    assert isinstance(node, Logical) and node.op == "or"
    assert isinstance(node.left, Logical) and node.left.op == "and"
    assert isinstance(node.left.left, Unary) and node.left.left.op == "not"
    assert isinstance(node.left.left.operand, Binary) and node.left.left.operand.op == "=="

    node, _ = parse_expression("1 + 2 * 3 in [7] == True")
    assert isinstance(node, Binary) and node.op == "=="
    assert node.left.op == "in" and node.left.left.op == "+"

    node, _ = parse_expression(
        "'a' if x1 else 'b' if x2 else 'c'".replace("x1", "True").replace("x2", "False")
    )
    assert isinstance(node, Ternary) and isinstance(node.other, Ternary)

    node, _ = parse_expression("1 is not None")
    assert node.op == "is not"
    node, _ = parse_expression("1 not in []")
    assert node.op == "not in"


def test_trailing_cast():
    assert compile_expression("'12' -> int").evaluate({}) == 12
    assert compile_expression("1 + 1 -> str").evaluate({}) == "2"  # the cast wraps everything


@pytest.mark.parametrize(
    "source",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "[" * 10_000 + "]" * 10_000,
        "{'a':" * 5_000 + "1" + "}" * 5_000,
        "not " * 10_000 + "True",
        "-" * 10_000 + "1",
        "FN.length(" * 5_000 + "[]" + ")" * 5_000,
    ],
)
def test_deep_nesting_is_a_clean_parse_error(source):
    err = error_of(source)
    assert "nested" in err.message or "too complex" in err.message


def test_long_paths_are_loops_not_recursion():
    assert (
        compile_expression("TRIGGER.a" + "[0]" * 10_000).evaluate({"TRIGGER": {"a": [1]}}) is None
    )


def test_long_flat_chains_are_bounded_not_recursive():
    with pytest.raises(ParseError, match="too complex"):
        compile_expression(" + ".join(["1"] * 10_000))
    with pytest.raises(ParseError, match="too complex"):
        compile_expression(" && ".join(["True"] * 10_000))
    # A long but reasonable chain is fine.
    assert compile_expression(" + ".join(["1"] * (MAX_AST_DEPTH - 5))).evaluate({}) == (
        MAX_AST_DEPTH - 5
    )


def test_nesting_limit_allows_reasonable_depth():
    depth = MAX_NESTING - 2
    assert compile_expression("(" * depth + "1" + ")" * depth).evaluate({}) == 1


def test_references():
    expr = compile_expression(
        "FN.lookup(ACTIONS.a.result, SECRETS.wazuh.API_KEY) if VARS.team.email "
        "else ACTIONS['b'].result || TRIGGER.x || ENV.y || var.z"
    )
    refs = expr.references
    assert refs.actions == {"a", "b"}
    assert refs.functions == {"lookup"}
    assert refs.roots == {"ACTIONS", "SECRETS", "VARS", "TRIGGER", "ENV", "var"}
    assert refs.secrets == {("wazuh", "API_KEY")}
    assert refs.variables == {("team", "email")}
    assert not refs.dynamic_actions
    assert compile_expression("ACTIONS[*].result").references.dynamic_actions


def test_filter_references_do_not_leak_at():
    refs = compile_expression("TRIGGER.a[?(@.x == ACTIONS.b.result)]").references
    assert refs.roots == {"TRIGGER", "ACTIONS"} and refs.actions == {"b"}


def test_iterator():
    name, expr = compile_iterator("for var.alert in TRIGGER.alerts[*]")
    assert name == "alert"
    assert expr.evaluate({"TRIGGER": {"alerts": [1, 2]}}) == [1, 2]
    name, expr = compile_iterator("${{ for var.x in [1, 2] }}")
    assert name == "x" and expr.evaluate({}) == [1, 2]
    with pytest.raises(ParseError):
        compile_iterator("for x in [1]")
    with pytest.raises(ParseError) as info:
        compile_iterator("${{ for var.x in [1, }}")
    assert info.value.column == 22  # shifted into the template text: points at '}}'


def test_source_must_be_text():
    with pytest.raises(ParseError):
        compile_expression(123)  # type: ignore[arg-type]
