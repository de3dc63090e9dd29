"""Lambdas in our own language: the article's lambda, shared budgets, and no Python."""

from __future__ import annotations

import pytest

from casefold.expressions import (
    Budget,
    BudgetExceededError,
    EvaluationError,
    ParseError,
    compile_lambda,
)


def test_article_lambda():
    fn = compile_lambda("lambda m: m['key'] + ': ' + m['value']")
    assert fn({"key": "a", "value": "b"}) == "a: b"
    assert fn.params == ("m",)


def test_python_spellings():
    assert compile_lambda("lambda x: x['a'] > 5 and not x['b']")({"a": 6, "b": False}) is True
    assert compile_lambda("lambda x: len(x) if x is not None else 0")([1, 2]) == 2
    assert compile_lambda("lambda x: x.name")({"name": "n"}) == "n"
    assert compile_lambda("lambda x: str(x) + '!'")(3) == "3!"
    assert compile_lambda("lambda x: x.items[*].id")({"items": [{"id": 1}, {"id": 2}]}) == [1, 2]
    assert compile_lambda("lambda x: FN.uppercase(x)")("a") == "A"


def test_two_parameters_and_map_unpacking():
    fn = compile_lambda("lambda a, b: a * b")
    assert fn(3, 4) == 12
    assert fn.map([[1, 2], [3, 4]]) == [2, 12]
    with pytest.raises(EvaluationError, match="takes 2 argument"):
        fn(1)


def test_map_and_filter():
    assert compile_lambda("lambda x: x * 2").map([1, 2, 3]) == [2, 4, 6]
    assert compile_lambda("lambda x: x.sev > 5").filter([{"sev": 3}, {"sev": 9}]) == [{"sev": 9}]
    assert compile_lambda("lambda x: x").map(None) == []
    with pytest.raises(EvaluationError):
        compile_lambda("lambda x: x").map("abc")


def test_context_is_visible_when_given():
    fn = compile_lambda("lambda x: x + TRIGGER.offset")
    assert fn(1, context={"TRIGGER": {"offset": 10}}) == 11
    assert fn.references.roots == {"TRIGGER"}


def test_missing_keys_are_none_not_keyerror():
    assert compile_lambda("lambda m: m['nope']")({}) is None
    with pytest.raises(EvaluationError, match="unsupported operand"):
        compile_lambda("lambda m: m['key'] + ': ' + m['value']")({"key": "a"})


@pytest.mark.parametrize(
    "source",
    [
        "lambda x: x.__class__",
        "lambda x: ('{0._' + '_class_' + '_}').format(x)",
        "lambda x: x.format(1)",
        "lambda x: __import__('os')",
        "lambda x: [i for i in x]",
        "lambda x: eval('1')",
        "lambda x: open('/etc/passwd')",
        "lambda x: getattr(x, 'y')",
        "lambda x: lambda y: y",
        "lambda x: x if x",
        "lambda : 1",
        "lambda x, x: 1",
        "lambda True: 1",
        "lambda TRIGGER: 1",
        "x: 1",
        "lambda x: y",
        "lambda x: f'{x}'",
    ],
)
def test_python_escape_hatches_do_not_parse(source):
    with pytest.raises(ParseError):
        compile_lambda(source)


def test_format_string_concatenation_trick_is_refused_at_runtime():
    fn = compile_lambda("lambda x: FN.format('{0._' + '_class_' + '_}', x)")
    with pytest.raises(EvaluationError, match="not allowed"):
        fn({})
    fn = compile_lambda("lambda x: FN.format('{0[' + 'a' + ']}', x)")
    with pytest.raises(EvaluationError, match="not allowed"):
        fn({"a": 1})


def test_step_budget_is_shared_over_a_big_list():
    fn = compile_lambda("lambda x: FN.add(x, 1)")
    items = list(range(50_000))
    with pytest.raises(BudgetExceededError, match="step budget"):
        fn.map(items, budget=Budget(max_steps=10_000))
    assert fn.map(items[:1000], budget=Budget(max_steps=10_000))[-1] == 1000


def test_repeated_concatenation_in_map_hits_the_total_output_budget():
    fn = compile_lambda("lambda x: x + x + x + x")
    big = ["y" * 100_000] * 200
    with pytest.raises(BudgetExceededError):
        fn.map(big, budget=Budget(max_total_bytes=4 << 20))
