"""Path evaluation: plain lookups are lenient scalars, multi-match paths are lists."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from casefold.expressions import Budget, BudgetExceededError, compile_expression
from casefold.expressions.paths import step


def ev(source: str, trigger: object, budget: Budget | None = None) -> object:
    return compile_expression(source).evaluate({"TRIGGER": trigger}, budget=budget)


def test_step_is_lenient():
    assert step({"a": 1}, "a") == 1
    assert step({"a": 1}, "b") is None
    assert step([1, 2], 1) == 2
    assert step([1, 2], -3) is None
    assert step([1, 2], "a") is None
    assert step("abc", 0) is None  # strings are not containers in paths
    assert step(None, "a") is None
    assert step(5, "a") is None
    assert step({"a": 1}, ["unhashable"]) is None


def test_plain_paths_of_every_length():
    data = {"a": {"b": {"c": {"d": [10, {"e": "deep"}]}}}}
    assert ev("TRIGGER", data) == data
    assert ev("TRIGGER.a", data) == data["a"]
    assert ev("TRIGGER.a.b", data) == data["a"]["b"]
    assert ev("TRIGGER.a.b.c.d[1].e", data) == "deep"
    assert ev("TRIGGER.a.x.c.d[1].e", data) is None


def test_other_mappings_work_too():
    data = OrderedDict(a=OrderedDict(b=1))
    assert ev("TRIGGER.a.b", data) == 1
    assert ev("TRIGGER[*].b", data) == [1]


def test_context_may_lack_roots():
    assert compile_expression("ACTIONS.x.result").evaluate({}) is None
    assert compile_expression("ACTIONS[*].result").evaluate({}) == []


def test_multi_match_is_always_a_list():
    data = {"alerts": [{"ip": "a"}]}
    assert ev("TRIGGER.alerts[*].ip", data) == ["a"]
    assert ev("TRIGGER.alerts[?(@.ip == 'a')].ip", data) == ["a"]
    assert ev("TRIGGER.alerts[?(@.ip == 'b')].ip", data) == []
    assert ev("TRIGGER..ip", data) == ["a"]
    assert ev("TRIGGER.alerts[0:1].ip", data) == ["a"]


def test_null_values_are_matches():
    assert ev("TRIGGER[*].a", [{"a": None}, {"b": 1}]) == [None]


def test_nested_filters_restore_current_item():
    data = {
        "hosts": [
            {"name": "h1", "ports": [{"n": 22}, {"n": 80}]},
            {"name": "h2", "ports": [{"n": 443}]},
        ]
    }
    assert ev("TRIGGER.hosts[?FN.length(@.ports[?(@.n < 100)]) > 0].name", data) == ["h1"]
    assert ev("TRIGGER.hosts[?(@.ports[?(@.n == 443)] && @.name == 'h2')].name", data) == ["h2"]


def test_filter_can_use_other_contexts():
    ctx = {"TRIGGER": {"l": [{"v": 1}, {"v": 2}]}, "ACTIONS": {"t": {"result": 2}}}
    assert compile_expression("TRIGGER.l[?(@.v == ACTIONS.t.result)]").evaluate(ctx) == [{"v": 2}]


def test_filter_errors_are_no_match_but_budget_is_not():
    data = [{"sev": 9}, {"sev": "high"}, {}]
    assert ev("TRIGGER[?(@.sev > 5)]", data) == [{"sev": 9}]
    with pytest.raises(BudgetExceededError):
        ev("TRIGGER[?(FN.range(100000) != [])]", data, Budget(max_steps=1000))


def test_recursive_descent_is_document_order():
    data = {"a": {"x": 1, "b": {"x": 2}}, "c": [{"x": 3}], "x": 0}
    assert ev("TRIGGER..x", data) == [0, 1, 2, 3]  # pre-order: a node before its children
    assert ev("TRIGGER..x", {"a": {"x": 1, "b": {"x": 2}}, "c": [{"x": 3}]}) == [1, 2, 3]


def test_multi_paths_charge_steps():
    data = {"l": list(range(1000))}
    with pytest.raises(BudgetExceededError):
        ev("TRIGGER.l[*]", data, Budget(max_steps=500))
    assert len(ev("TRIGGER.l[*]", data, Budget(max_steps=2000))) == 1000
