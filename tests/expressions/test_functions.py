"""FN functions beyond what JSON compliance data can express (datetimes, budgets, broadcast)."""

from __future__ import annotations

import datetime as dt

import pytest

from casefold.expressions import (
    Budget,
    BudgetExceededError,
    EvaluationError,
    compile_expression,
    compile_template,
)


def ev(source: str, ctx: dict | None = None, budget: Budget | None = None) -> object:
    return compile_expression(source).evaluate(ctx or {}, budget=budget)


def test_datetime_arithmetic_with_plain_operators():
    now = ev("FN.utcnow()")
    assert isinstance(now, dt.datetime) and now.tzinfo is not None
    assert ev("FN.now() - FN.minutes(5)") < dt.datetime.now()
    assert ev("FN.days(1) * 2") == dt.timedelta(days=2)
    assert ev("FN.hours(1) / FN.minutes(1)") == 60
    assert ev("-FN.days(1)") == dt.timedelta(days=-1)
    assert isinstance(ev("FN.today()"), dt.date)
    assert isinstance(ev("FN.now(True)"), str)
    with pytest.raises(EvaluationError):
        ev("FN.now() - 'x'")
    with pytest.raises(EvaluationError):
        ev("FN.utcnow() - FN.now()")  # aware minus naive


def test_datetimes_interpolate_as_iso_8601():
    ctx = {"TRIGGER": {"t": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}}
    assert compile_template("at ${{ TRIGGER.t }}").render(ctx) == "at 2024-01-02T03:04:05+00:00"
    assert ev("TRIGGER.t -> str", ctx) == "2024-01-02T03:04:05+00:00"
    assert ev("FN.serialize_json({'t': TRIGGER.t})", ctx) == '{"t":"2024-01-02T03:04:05+00:00"}'
    assert ev("str(FN.minutes(2))") == "120.0"


def test_to_datetime_with_timezone_and_epoch():
    value = ev("FN.to_datetime(0, 'Europe/Paris')")
    assert value.isoformat() == "1970-01-01T01:00:00+01:00"
    assert ev("FN.from_timestamp(1700000000000, 'ms')").year == 2023


def test_broadcast_truncates_and_repeats():
    assert ev("FN.concat.map(['a', 'b'], '-', ['x', 'y', 'z'])") == ["a-x", "b-y"]
    assert ev("FN.lookup.map({'a': 1}, ['a', 'b'])") == [1, None]
    with pytest.raises(EvaluationError, match="argument 1"):
        ev("FN.uppercase.map([1, 'a'])")


def test_function_errors_are_prefixed_with_the_function_name():
    with pytest.raises(EvaluationError, match=r"^FN\.div: division by zero"):
        ev("FN.div(1, 0)")
    with pytest.raises(EvaluationError, match=r"FN\.from_base64"):
        ev("FN.from_base64('////')")


def test_output_limits_apply_to_function_results():
    with pytest.raises(BudgetExceededError):
        ev("FN.join(FN.range(200000), ',')", budget=Budget(max_output_bytes=100_000))
    with pytest.raises(BudgetExceededError):
        ev(
            "FN.concat(FN.join(FN.range(30000), ','), FN.join(FN.range(30000), ','))",
            budget=Budget(max_output_bytes=200_000),
        )


def test_set_functions_are_deterministic_for_dicts():
    a = "[{'ip': '1.1.1.1', 'n': 1}, {'n': 1, 'ip': '1.1.1.1'}, {'ip': '2.2.2.2'}]"
    assert ev(f"FN.unique({a})") == [{"ip": "1.1.1.1", "n": 1}, {"ip": "2.2.2.2"}]
    assert ev(f"FN.intersection({a}, [{{'ip': '2.2.2.2'}}])") == [{"ip": "2.2.2.2"}]


def test_fingerprint_is_stable():
    assert ev("FN.fingerprint('a', {'x': 1, 'y': [1, 2]})") == ev(
        "FN.fingerprint('a', {'y': [1, 2], 'x': 1})"
    )
    assert len(ev("FN.fingerprint()")) == 64


def test_regex_patterns_are_cached():
    from casefold.expressions.functions._util import _compile_regex

    before = _compile_regex.cache_info().hits
    for _ in range(3):
        ev("FN.regex_match('ab+c', 'abbc')")
    assert _compile_regex.cache_info().hits >= before + 2
