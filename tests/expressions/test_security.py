"""Attacks from tracecat.md §7 and the budget that stops them.

Every test asserts a *clean* failure: an ExpressionError subclass, quickly,
without allocating the bomb first.
"""

from __future__ import annotations

import time

import pytest

from casefold.expressions import (
    Budget,
    BudgetExceededError,
    EvaluationError,
    ExpressionError,
    ParseError,
    compile_expression,
    compile_template,
)


def evaluate(source: str, context: dict | None = None, budget: Budget | None = None):
    return compile_expression(source).evaluate(context or {}, budget=budget)


# --- attribute traversal / dunder access -----------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "TRIGGER.__class__",
        "TRIGGER['a'].__class__",
        "FN.__dict__",
        "__import__",
        "TRIGGER..__globals__",
        "(1).__class__",
    ],
)
def test_dunder_names_are_rejected_at_parse_time(source):
    with pytest.raises(ParseError, match="'__'"):
        compile_expression(source)


def test_quoted_dunder_keys_are_only_dict_lookups():
    # No attribute access exists: a quoted key is a mapping lookup, nothing more.
    assert evaluate("TRIGGER['__class__']", {"TRIGGER": {}}) is None
    assert (
        evaluate("'abc'['__len__']".replace("'abc'", "TRIGGER.s"), {"TRIGGER": {"s": "x"}}) is None
    )
    with pytest.raises(EvaluationError):
        evaluate("'abc'['__len__']")


@pytest.mark.parametrize(
    "template",
    ["{0.__class__}", "{0.__class__.__mro__}", "{0[a]}", "{0!r}", "{x}", "{0:{1}}", "{0.real}"],
)
def test_format_has_no_attribute_or_index_traversal(template):
    with pytest.raises(EvaluationError):
        evaluate("FN.format(TRIGGER.tpl, TRIGGER)", {"TRIGGER": {"tpl": template, "a": 1}})


def test_format_concatenation_trick_is_refused():
    with pytest.raises(EvaluationError, match="not allowed"):
        evaluate("FN.format('{0._' + '_class_' + '_}', 'x')")


def test_no_python_objects_leak_through_indexing():
    # Function results are plain data; indexing them never reaches Python attributes.
    with pytest.raises(EvaluationError, match="cannot index into datetime"):
        evaluate("FN.now()['year']")
    with pytest.raises(EvaluationError, match="cannot index"):
        evaluate("FN.days(1)['days']")


# --- number and size bombs --------------------------------------------------------------


def timed(fn):
    start = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - start
    return elapsed


@pytest.mark.parametrize(
    "source",
    [
        "FN.pow(9, FN.pow(9, 9))",
        "FN.pow(10, 100000)",
        "FN.pow(2, 5000)",
        "FN.mul(FN.pow(10, 1000), FN.pow(10, 1000))",
        "'x' * 1000000000000",
        "FN.mul('x', 1000000000000)",
        "1000000000000 * 'x'",
        "[1] * 1000000000000",
        "FN.range(1000000000000)",
        "FN.iter_product(FN.range(10000), FN.range(10000))",
        "FN.join(FN.range(100000), '-----------------')",
        "FN.replace(FN.join(FN.range(100000), ''), '1', '1111111111111111111111')",
        "FN.format('{0:>999}' * 2000, 1)",
    ],
)
def test_bombs_fail_before_allocating(source):
    with pytest.raises(BudgetExceededError):
        assert timed(lambda: evaluate(source)) < 1.0


def test_int_growth_through_repeated_multiplication_is_capped():
    expr = "FN.pow(2, 4000) * FN.pow(2, 4000)"
    with pytest.raises(BudgetExceededError):
        evaluate(expr)


def test_float_overflow_is_an_evaluation_error():
    with pytest.raises(EvaluationError):
        evaluate("FN.pow(10.0, 400)")


def test_huge_output_through_repeated_concatenation_in_a_template():
    t = compile_template("${{ FN.join(FN.range(50000), ',') + FN.join(FN.range(50000), ',') }}")
    with pytest.raises(BudgetExceededError):
        t.render({}, budget=Budget(max_output_bytes=200_000))


def test_yaml_alias_bomb_is_refused():
    bomb = "a: &a ['x','x']\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(20)
    )
    with pytest.raises(ExpressionError):
        evaluate("FN.serialize_json(FN.deserialize_yaml(TRIGGER.y))", {"TRIGGER": {"y": bomb}})


def test_yaml_python_tags_are_refused():
    with pytest.raises(EvaluationError):
        evaluate(
            "FN.deserialize_yaml(TRIGGER.y)",
            {"TRIGGER": {"y": "!!python/object/apply:os.system ['id']"}},
        )


# --- steps and depth ---------------------------------------------------------------------


def test_step_budget_on_wide_data():
    ctx = {"TRIGGER": {"items": [{"x": i} for i in range(20_000)]}}
    with pytest.raises(BudgetExceededError, match="step budget"):
        evaluate("TRIGGER.items[?(@.x > 10)].x", ctx, Budget(max_steps=10_000))
    with pytest.raises(BudgetExceededError, match="step budget"):
        evaluate("FN.add.map(TRIGGER.items[*].x, 1)", ctx, Budget(max_steps=10_000))
    assert len(evaluate("TRIGGER.items[*].x", ctx)) == 20_000


def test_recursive_descent_on_hostile_depth():
    deep: dict = {}
    cur = deep
    for _ in range(5_000):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(BudgetExceededError):
        evaluate("TRIGGER..a", {"TRIGGER": deep})
    with pytest.raises(BudgetExceededError):
        evaluate("FN.flatten(TRIGGER.l)", {"TRIGGER": {"l": _deep_list(5_000)}})


def _deep_list(n: int) -> list:
    out: list = []
    for _ in range(n):
        out = [out]
    return out


def test_deeply_nested_data_in_operators_is_clean():
    ctx = {"TRIGGER": {"a": _deep_list(100_000), "b": _deep_list(100_000)}}
    with pytest.raises(ExpressionError):
        evaluate("TRIGGER.a == TRIGGER.b", ctx)
    with pytest.raises(ExpressionError):
        evaluate("FN.serialize_json(TRIGGER.a)", ctx)
    with pytest.raises(ExpressionError):
        compile_template("x ${{ TRIGGER.a }}").render(ctx)


# --- regex denial of service ------------------------------------------------------------


def test_catastrophic_regex_fails_within_the_timeout():
    ctx = {"TRIGGER": {"s": "a" * 50 + "!"}}
    for fn in ("regex_match", "regex_extract", "regex_search"):
        elapsed = 0.0
        start = time.perf_counter()
        try:
            result = evaluate(f"FN.{fn}('(a+)+$', TRIGGER.s)", ctx, Budget(regex_timeout=0.05))
        except BudgetExceededError:
            result = "timeout"
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0
        assert result in (False, None, "timeout")


def test_nested_quantifier_bomb_times_out():
    for pattern, text in (("(x+x+)+y", "x" * 3000), ("(a|aa)+$", "a" * 5000 + "!")):
        ctx = {"TRIGGER": {"s": text, "p": pattern}}
        for fn in ("regex_search", "regex_extract", "regex_extract_all", "regex_match"):
            start = time.perf_counter()
            with pytest.raises(BudgetExceededError, match="regex"):
                evaluate(f"FN.{fn}(TRIGGER.p, TRIGGER.s)", ctx, Budget(regex_timeout=0.05))
            assert time.perf_counter() - start < 1.0


def test_ioc_extraction_on_large_text_is_bounded():
    text = "1.2.3.4 " * 200_000
    with pytest.raises(BudgetExceededError):
        evaluate("FN.extract_ipv4(TRIGGER.t)", {"TRIGGER": {"t": text}}, Budget(max_steps=5_000))


# --- templates: data is never evaluated ------------------------------------------------------


def test_template_data_is_inert():
    ctx = {
        "TRIGGER": {"body": "${{ SECRETS.wazuh.API_KEY }}"},
        "SECRETS": {"wazuh": {"API_KEY": "k"}},
    }
    assert (
        compile_template("note: ${{ TRIGGER.body }}").render(ctx)
        == "note: ${{ SECRETS.wazuh.API_KEY }}"
    )


def test_nested_repetition_of_an_aliased_list_is_refused():
    """[[[1]*1000]*1000]*1000 holds only 3,000 references but 10^9 cells once copied."""
    with pytest.raises(BudgetExceededError):
        compile_expression("[[[1] * 1000] * 1000] * 1000").evaluate({})
