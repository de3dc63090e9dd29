"""Templates and compiled values: scanning, typed vs string path, keys, references."""

from __future__ import annotations

import pytest

from casefold.expressions import (
    Budget,
    BudgetExceededError,
    EvaluationError,
    ParseError,
    compile_template,
    compile_value,
)
from casefold.expressions.templates import find_templates

CTX = {"TRIGGER": {"a": 42, "name": "web-01", "d": {"x": 1}, "key": "dyn"}}


def test_find_templates_splits_literals_and_sources():
    assert find_templates("a ${{ 1 }} b ${{ '}}' }}") == ["a ", (" 1 ", 5), " b ", (" '}}' ", 16)]
    assert find_templates("plain") == ["plain"]
    assert find_templates("${{ {'a': {'b': 1}} }}") == [(" {'a': {'b': 1}} ", 3)]


def test_error_offsets_point_into_the_whole_text():
    with pytest.raises(ParseError) as info:
        compile_template("Host: ${{ TRIGGER.name + }} end")
    err = info.value
    assert err.source == "Host: ${{ TRIGGER.name + }} end"
    assert err.column == 26
    assert str(err).splitlines()[-1] == "  " + " " * 25 + "^"


def test_typed_and_string_paths():
    assert compile_template("${{ TRIGGER.d }}").render(CTX) == {"x": 1}
    assert compile_template("${{ TRIGGER.d }} ").render(CTX) == '{"x":1} '
    assert compile_template("Host ${{ TRIGGER.name }} level ${{ TRIGGER.a }}").render(CTX) == (
        "Host web-01 level 42"
    )


def test_static_templates():
    t = compile_template("nothing to do")
    assert t.is_static and t.render(CTX) == "nothing to do"
    assert t.references.roots == frozenset()
    assert not compile_template("${{ 1 }}").is_static


def test_compile_value_walks_keys_lists_and_returns_static_parts_as_is():
    static_part = {"k": [1, 2, {"deep": True}]}
    value = compile_value(
        {
            "${{ TRIGGER.key }}": "${{ TRIGGER.a }}",
            "list": ["x", "${{ TRIGGER.name }}", 3],
            "static": static_part,
            "n": None,
        }
    )
    out = value.render(CTX)
    assert out == {
        "dyn": 42,
        "list": ["x", "web-01", 3],
        "static": static_part,
        "n": None,
    }
    assert out["static"] is static_part  # no copying of parts without templates
    assert not value.is_static
    assert value.references.roots == {"TRIGGER"}


def test_fully_static_value_is_returned_untouched():
    obj = {"a": [1, {"b": "c"}]}
    value = compile_value(obj)
    assert value.is_static and value.render(CTX) is obj


def test_key_collisions_are_errors():
    with pytest.raises(EvaluationError, match="key collision"):
        compile_value({"${{ 'a' }}": 1, "a": 2}).render(CTX)
    with pytest.raises(EvaluationError, match="key collision"):
        compile_value({"a": 2, "${{ 'a' }}": 1}).render(CTX)
    with pytest.raises(EvaluationError, match="unhashable"):
        compile_value({"${{ [1] }}": 1}).render(CTX)


def test_non_string_keys_stay_non_string():
    assert compile_value({"${{ 123 }}": "x"}).render(CTX) == {123: "x"}


def test_value_nesting_is_bounded():
    deep: object = "x"
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ParseError, match="nested deeper"):
        compile_value(deep)


def test_one_budget_per_render_is_shared_across_templates():
    value = compile_value({f"k{i}": "${{ FN.range(60) }}" for i in range(10)})
    assert len(value.render(CTX)) == 10
    with pytest.raises(BudgetExceededError):
        value.render(CTX, Budget(max_steps=300))


def test_interpolated_output_is_bounded():
    t = compile_template("${{ FN.join(FN.range(1000), ',') }}-${{ FN.join(FN.range(1000), ',') }}")
    with pytest.raises(BudgetExceededError):
        t.render(CTX, Budget(max_output_bytes=5000))
