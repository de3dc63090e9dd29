"""Budget and EvalState mechanics; simple expressions do not pay for the budget."""

from __future__ import annotations

import pytest

from casefold.expressions import DEFAULT_BUDGET, Budget, BudgetExceededError, compile_expression
from casefold.expressions.budget import EvalState


def test_defaults():
    assert DEFAULT_BUDGET == Budget(
        max_steps=100_000, max_output_bytes=1 << 20, max_depth=64, regex_timeout=0.05
    )


@pytest.mark.parametrize("field", ["max_steps", "max_output_bytes", "max_depth", "regex_timeout"])
def test_rejects_non_positive_limits(field):
    with pytest.raises(ValueError):
        Budget(**{field: 0})


def test_state_charges_and_reserves():
    st = EvalState(Budget(max_steps=3, max_output_bytes=10, max_total_bytes=15))
    st.charge(3)
    with pytest.raises(BudgetExceededError, match="step budget"):
        st.charge()
    st.reserve(10)
    with pytest.raises(BudgetExceededError, match="over the limit"):
        st.reserve(11)
    with pytest.raises(BudgetExceededError, match="in total"):
        st.reserve(6)


def test_simple_expressions_skip_the_state():
    for source in ("TRIGGER.a >= 1", "'x' in TRIGGER.l", "1 if TRIGGER.a else 2", "not TRIGGER.a"):
        assert not compile_expression(source)._stateful
    for source in ("FN.length([])", "TRIGGER.l[*]", "'a' + 'b'", "'a' * 3"):
        assert compile_expression(source)._stateful


def test_budget_is_per_evaluation():
    expr = compile_expression("FN.range(600)")
    budget = Budget(max_steps=1000)
    for _ in range(5):  # a fresh state each time: steps do not accumulate across calls
        assert len(expr.evaluate({}, budget=budget)) == 600
