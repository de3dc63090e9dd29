"""The runner on its own: Tracecat's scheduling (skips, run_if, joins, .error edges), for_each,
typed results, retries with backoff, start_delay, resuming, secret masking and budgets."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import casefold.actions.cases  # noqa: F401 - registers the built-in actions
import casefold.actions.core  # noqa: F401
import casefold.actions.cti  # noqa: F401
from casefold.actions.context import ActionContext
from casefold.actions.registry import ActionRegistry
from casefold.playbooks.loader import parse_playbook
from casefold.playbooks.runner import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    WAITING,
    Runner,
    RunOutcome,
    StepRecord,
)

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def actx() -> ActionContext:
    return ActionContext(
        dry_run=True,
        playbook="t",
        run_id=None,
        alert_id=None,
        case_id=None,
        case_opened_by_alert=False,
        engine=None,
        run_now=None,
    )


def playbook(actions: str, registry: ActionRegistry | None = None) -> Any:
    text = "title: t\nactions:\n" + textwrap.indent(textwrap.dedent(actions), "  ")
    if registry is None:
        return parse_playbook(text, "t.yml")
    return parse_playbook(text, "t.yml", registry)


def base(trigger: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"TRIGGER": trigger or {}, "SECRETS": {}, "VARS": {}, "ENV": {}, "var": {}, **extra}


def run(actions: str, trigger: dict[str, Any] | None = None, **kw: Any) -> RunOutcome:
    return Runner().execute(playbook(actions), base(trigger), {}, actx(), **kw)


def statuses(outcome: RunOutcome) -> dict[str, str]:
    return {ref: rec.status for ref, rec in outcome.records.items()}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Flaky(Exception):
    retryable = True


class Counter:
    """Test-only actions on a fresh registry: `test.flaky` fails `failures` times then returns
    its `value`; `test.count` counts calls; `test.broken` raises a non-retryable error."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}
        self.registry = ActionRegistry()
        self.registry.action("test.flaky", kind="network", required=("value",))(self._flaky)
        self.registry.action("test.count", kind="pure", optional=("value",))(self._count)
        self.registry.action("test.broken", kind="pure", optional=("value",))(self._broken)

    def _bump(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    def _flaky(self, args: dict[str, Any], ctx: ActionContext) -> Any:
        n = self._bump("flaky")
        if n <= self.failures:
            raise Flaky(f"temporary trouble #{n}")
        return args["value"]

    def _count(self, args: dict[str, Any], ctx: ActionContext) -> Any:
        self._bump("count")
        return args.get("value")

    def _broken(self, args: dict[str, Any], ctx: ActionContext) -> Any:
        self._bump("broken")
        raise ValueError(f"bad argument {args.get('value')}")


# -- the graph -------------------------------------------------------------------------------


def test_a_chain_passes_results_along():
    out = run(
        """
        - ref: c
          action: core.transform.apply
          depends_on: [b]
          args: {value: "${{ ACTIONS.b.result }}", python_lambda: "lambda x: x * 10"}
        - ref: a
          action: core.transform.reshape
          args: {value: "${{ TRIGGER.n }}"}
        - ref: b
          action: core.transform.apply
          depends_on: [a.success]
          args: {value: "${{ ACTIONS.a.result }}", python_lambda: "lambda x: x + 1"}
        """,
        {"n": 1},
    )
    assert out.status == SUCCEEDED and out.error is None
    assert list(out.records) == ["a", "b", "c"]  # topological order, not file order
    assert [out.records[r].result for r in "abc"] == [1, 2, 20]
    assert out.changed == ["a", "b", "c"]
    assert all(rec.attempts == 1 and rec.duration_ms is not None for rec in out.records.values())
    assert out.records["b"].input == {"value": 1, "python_lambda": "lambda x: x + 1"}
    assert out.counts == {SUCCEEDED: 3}


RUN_IF_CHAIN = """
- ref: a
  action: core.transform.reshape
  run_if: ${{ TRIGGER.go }}
  args: {value: 1}
- ref: b
  action: core.transform.reshape
  depends_on: [a]
  args: {value: "${{ ACTIONS.a.result }}"}
- ref: c
  action: core.transform.reshape
  depends_on: [b]
  args: {value: 3}
- ref: other
  action: core.transform.reshape
  args: {value: "${{ 'a' in ACTIONS }}"}
"""


def test_a_false_run_if_skips_the_step_and_everything_after_it():
    out = run(RUN_IF_CHAIN, {"go": False})
    assert statuses(out) == {"a": SKIPPED, "b": SKIPPED, "c": SKIPPED, "other": SUCCEEDED}
    assert out.records["a"].reason == "run_if was false"
    assert out.records["b"].reason == "a was skipped"
    assert out.records["c"].reason == "b was skipped"
    assert out.records["a"].attempts == 0 and out.records["a"].input is None
    assert out.records["other"].result is False  # a skipped step is absent from ACTIONS
    assert out.status == SUCCEEDED  # skipping is not failing


def test_a_true_run_if_runs_the_chain():
    out = run(RUN_IF_CHAIN, {"go": True})
    assert statuses(out) == {"a": SUCCEEDED, "b": SUCCEEDED, "c": SUCCEEDED, "other": SUCCEEDED}
    assert out.records["b"].result == 1


@pytest.mark.parametrize(
    "condition",
    ["${{ TRIGGER.level > 5 }}", "TRIGGER.level > 5", "${{ FN.length(TRIGGER.ips) == 2 }}"],
)
def test_run_if_accepts_a_template_or_a_bare_expression(condition):
    actions = f"""
    - ref: a
      action: core.transform.reshape
      run_if: "{condition}"
      args: {{value: 1}}
    """
    assert statuses(run(actions, {"level": 7, "ips": [1, 2]})) == {"a": SUCCEEDED}
    assert statuses(run(actions, {"level": 3, "ips": [1]})) == {"a": SKIPPED}


def test_a_run_if_that_cannot_be_evaluated_fails_the_step():
    out = run(
        """
        - ref: a
          action: core.transform.reshape
          run_if: ${{ TRIGGER.n / 0 }}
          args: {value: 1}
        """,
        {"n": 1},
    )
    assert statuses(out) == {"a": FAILED}
    assert out.records["a"].error.startswith("run_if: ")
    assert "division by zero" in out.records["a"].error
    assert out.status == FAILED and out.error.startswith("step a failed: run_if")


DIAMOND = """
- ref: a
  action: core.transform.reshape
  args: {value: 1}
- ref: left
  action: core.transform.reshape
  depends_on: [a]
  run_if: ${{ False }}
  args: {value: left}
- ref: right
  action: core.transform.reshape
  depends_on: [a]
  args: {value: right}
- ref: join
  action: core.transform.reshape
  depends_on: [left, right]
  join_strategy: JOIN
  args: {value: "${{ [ACTIONS.left.result, ACTIONS.right.result] }}"}
"""


def test_join_all_on_a_diamond_with_a_skipped_branch_is_skipped():
    out = run(DIAMOND.replace("JOIN", "all"))
    assert statuses(out) == {
        "a": SUCCEEDED,
        "left": SKIPPED,
        "right": SUCCEEDED,
        "join": SKIPPED,
    }
    assert out.records["join"].reason == "left was skipped"
    assert out.status == SUCCEEDED


def test_join_any_on_a_diamond_with_a_skipped_branch_runs():
    out = run(DIAMOND.replace("JOIN", "any"))
    assert statuses(out)["join"] == SUCCEEDED
    assert out.records["join"].result == [None, "right"]


def test_join_any_is_skipped_when_every_branch_is_skipped():
    out = run(
        DIAMOND.replace("JOIN", "any").replace(
            "args: {value: right}", "run_if: False\n  args: {value: right}"
        )
    )
    assert statuses(out) == {"a": SUCCEEDED, "left": SKIPPED, "right": SKIPPED, "join": SKIPPED}


ERROR_EDGES = """
- ref: a
  action: core.transform.apply
  args: {value: "${{ TRIGGER.n }}", python_lambda: "lambda x: 10 / x"}
- ref: after_a
  action: core.transform.reshape
  depends_on: [a]
  args: {value: "${{ ACTIONS.a.result }}"}
- ref: after_after
  action: core.transform.reshape
  depends_on: [after_a]
  args: {value: 1}
- ref: independent
  action: core.transform.reshape
  args: {value: "ok"}
- ref: independent_next
  action: core.transform.reshape
  depends_on: [independent]
  args: {value: "${{ ACTIONS.independent.result }}!"}
"""
HANDLER = """
- ref: handler
  action: core.transform.reshape
  depends_on: [a.error]
  args: {value: "handled: ${{ ACTIONS.a.error }}"}
"""


def test_a_handled_failure_runs_the_error_edge_and_prunes_the_success_edges():
    out = run(ERROR_EDGES + HANDLER, {"n": 0})
    assert statuses(out) == {
        "a": FAILED,
        "after_a": SKIPPED,
        "after_after": SKIPPED,
        "independent": SUCCEEDED,
        "independent_next": SUCCEEDED,
        "handler": SUCCEEDED,
    }
    assert "division by zero" in out.records["a"].error
    assert out.records["a"].input == {"value": 0, "python_lambda": "lambda x: 10 / x"}
    assert out.records["after_a"].reason == "a failed"
    assert out.records["handler"].result.startswith("handled: division by zero")
    assert out.status == SUCCEEDED and out.error is None


def test_an_unhandled_failure_fails_the_run_but_independent_branches_still_run():
    out = run(ERROR_EDGES, {"n": 0})
    assert statuses(out) == {
        "a": FAILED,
        "after_a": SKIPPED,
        "after_after": SKIPPED,
        "independent": SUCCEEDED,
        "independent_next": SUCCEEDED,
    }
    assert out.records["independent_next"].result == "ok!"
    assert out.status == FAILED
    assert out.error.startswith("step a failed: division by zero")


def test_the_error_handler_is_skipped_when_the_step_succeeds():
    out = run(ERROR_EDGES + HANDLER, {"n": 5})
    assert out.records["a"].result == 2
    assert statuses(out)["after_after"] == SUCCEEDED
    assert statuses(out)["handler"] == SKIPPED
    assert out.records["handler"].reason == "a succeeded (this step handles its error)"
    assert out.status == SUCCEEDED


def test_a_failing_action_argument_fails_the_step():
    out = run(
        """
        - ref: comment
          action: cases.create_comment
          args: {case_id: "not a case", content: hi}
        - ref: note
          action: core.transform.reshape
          depends_on: [comment.error]
          args: {value: "${{ ACTIONS.comment.error }}"}
        """
    )
    assert statuses(out) == {"comment": FAILED, "note": SUCCEEDED}
    assert "not a case id" in out.records["note"].result
    assert out.status == SUCCEEDED


def test_an_unknown_action_at_run_time_fails_the_step_not_the_runner():
    registry = Counter().registry
    pb = playbook(
        """
        - ref: a
          action: test.count
        """,
        registry,
    )
    empty = ActionRegistry()  # the action vanished between loading and running
    out = Runner(registry=empty).execute(pb, base(), {}, actx())
    assert out.status == FAILED and "unknown action" in out.records["a"].error


# -- for_each and typed results ---------------------------------------------------------------


def test_for_each_gives_a_result_per_item():
    out = run(
        """
        - ref: double
          action: core.transform.reshape
          for_each: ${{ for var.x in TRIGGER.items }}
          args: {value: "${{ var.x * 2 }}"}
        """,
        {"items": [1, 2, 3]},
    )
    assert out.records["double"].result == [2, 4, 6]
    assert out.records["double"].input == [{"value": 2}, {"value": 4}, {"value": 6}]


def test_for_each_zips_several_lists_to_the_shortest():
    out = run(
        """
        - ref: pairs
          action: core.transform.reshape
          for_each:
            - ${{ for var.ip in TRIGGER.ips }}
            - ${{ for var.port in TRIGGER.ports }}
          args: {value: "${{ var.ip }}:${{ var.port }}"}
        """,
        {"ips": ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "ports": [22, 443]},
    )
    assert out.records["pairs"].result == ["10.0.0.1:22", "10.0.0.2:443"]


def test_for_each_over_an_empty_or_missing_list_gives_an_empty_result():
    actions = """
    - ref: each
      action: core.transform.reshape
      for_each: ${{ for var.x in TRIGGER.items }}
      args: {value: "${{ var.x }}"}
    """
    assert run(actions, {"items": []}).records["each"].result == []
    assert run(actions, {}).records["each"].result == []


def test_for_each_over_a_non_list_fails_the_step():
    out = run(
        """
        - ref: each
          action: core.transform.reshape
          for_each: ${{ for var.x in TRIGGER.items }}
          args: {value: "${{ var.x }}"}
        """,
        {"items": "abc"},
    )
    assert out.records["each"].status == FAILED
    assert "needs a list" in out.records["each"].error


def test_one_failed_iteration_fails_the_whole_for_each():
    out = run(
        """
        - ref: each
          action: core.transform.apply
          for_each: ${{ for var.x in TRIGGER.items }}
          args: {value: "${{ var.x }}", python_lambda: "lambda x: 10 / x"}
        """,
        {"items": [1, 0, 2]},
    )
    assert out.records["each"].status == FAILED and out.records["each"].result is None


def test_a_template_filling_the_string_keeps_its_type_and_interpolation_makes_text():
    out = run(
        """
        - ref: typed
          action: core.transform.reshape
          args:
            value:
              int: ${{ TRIGGER.n }}
              list: ${{ TRIGGER.items }}
              dict: ${{ TRIGGER.d }}
              bool: ${{ TRIGGER.flag }}
              none: ${{ TRIGGER.missing }}
              cast: ${{ TRIGGER.s -> int }}
              text: "n=${{ TRIGGER.n }}"
              text_list: "items: ${{ TRIGGER.items }}"
              two: "${{ TRIGGER.n }}${{ TRIGGER.n }}"
              padded: " ${{ TRIGGER.n }}"
              plain: no templates here
        """,
        {"n": 42, "items": [1, "a"], "d": {"k": 1}, "flag": True, "s": "7"},
    )
    assert out.records["typed"].result == {
        "int": 42,
        "list": [1, "a"],
        "dict": {"k": 1},
        "bool": True,
        "none": None,
        "cast": 7,
        "text": "n=42",
        "text_list": 'items: [1,"a"]',  # Casefold interpolates JSON (docs/expressions.md)
        "two": "4242",
        "padded": " 42",
        "plain": "no templates here",
    }


# -- retries and delays -------------------------------------------------------------------------

FLAKY = """
- ref: first
  action: test.count
  args: {value: 1}
- ref: flaky
  action: test.flaky
  depends_on: [first]
  retry_policy: {max_attempts: MAX, backoff: 10}
  args: {value: "${{ ACTIONS.first.result + 1 }}"}
- ref: last
  action: test.count
  depends_on: [flaky]
  args: {value: "${{ [ACTIONS.first.result, ACTIONS.flaky.result] }}"}
"""


def test_a_retryable_failure_waits_with_backoff_then_succeeds_on_the_third_attempt():
    c = Counter(failures=2)
    clock = Clock()
    runner = Runner(registry=c.registry, clock=clock)
    pb = playbook(FLAKY.replace("MAX", "3"), c.registry)

    out = runner.execute(pb, base(), {}, actx())
    assert out.status == WAITING and out.not_before == T0 + timedelta(seconds=10)
    rec = out.records["flaky"]
    assert (rec.status, rec.attempts, rec.due) == (WAITING, 1, T0 + timedelta(seconds=10))
    assert rec.error == "temporary trouble #1" and rec.reason == "retry 2/3"
    assert "last" not in out.records  # waits for its dependency, neither run nor skipped
    assert c.calls == {"count": 1, "flaky": 1}

    clock.advance(5)  # not yet due: nothing runs
    early = runner.execute(pb, base(), out.records, actx())
    assert early.status == WAITING and early.changed == []
    assert early.not_before == T0 + timedelta(seconds=10)
    assert c.calls == {"count": 1, "flaky": 1}

    clock.advance(5)
    out = runner.execute(pb, base(), out.records, actx())
    assert out.status == WAITING
    assert out.records["flaky"].attempts == 2
    assert out.not_before == clock.now + timedelta(seconds=20)  # the backoff doubles
    assert out.changed == ["flaky"]

    clock.advance(20)
    out = runner.execute(pb, base(), out.records, actx())
    assert out.status == SUCCEEDED
    assert out.records["flaky"].status == SUCCEEDED and out.records["flaky"].attempts == 3
    assert out.records["flaky"].result == 2 and out.records["flaky"].error is None
    assert out.records["last"].result == [1, 2]
    assert out.changed == ["flaky", "last"]
    assert c.calls == {"count": 2, "flaky": 3}  # `first` ran once, `last` once


def test_retries_stop_after_max_attempts():
    c = Counter(failures=99)
    clock = Clock()
    runner = Runner(registry=c.registry, clock=clock)
    pb = playbook(FLAKY.replace("MAX", "2"), c.registry)
    out = runner.execute(pb, base(), {}, actx())
    assert out.status == WAITING
    clock.advance(10)
    out = runner.execute(pb, base(), out.records, actx())
    assert out.status == FAILED
    assert out.records["flaky"].status == FAILED and out.records["flaky"].attempts == 2
    assert out.records["flaky"].error == "temporary trouble #2"
    assert out.records["last"].status == SKIPPED
    assert out.error == "step flaky failed: temporary trouble #2"
    assert c.calls["flaky"] == 2


def test_without_a_retry_policy_a_retryable_error_fails_at_once():
    c = Counter(failures=1)
    pb = playbook(FLAKY.replace("retry_policy: {max_attempts: MAX, backoff: 10}", ""), c.registry)
    out = Runner(registry=c.registry, clock=Clock()).execute(pb, base(), {}, actx())
    assert out.status == FAILED and out.records["flaky"].attempts == 1


def test_a_non_retryable_error_is_not_retried():
    c = Counter()
    pb = playbook(
        """
        - ref: broken
          action: test.broken
          retry_policy: {max_attempts: 5, backoff: 1}
          args: {value: 7}
        """,
        c.registry,
    )
    out = Runner(registry=c.registry, clock=Clock()).execute(pb, base(), {}, actx())
    assert out.status == FAILED and out.not_before is None
    assert out.records["broken"].attempts == 1 and out.records["broken"].error == "bad argument 7"
    assert c.calls == {"broken": 1}


def test_an_expression_error_is_never_retried():
    c = Counter()
    pb = playbook(
        """
        - ref: flaky
          action: test.flaky
          retry_policy: {max_attempts: 5}
          args: {value: "${{ 1 / 0 }}"}
        """,
        c.registry,
    )
    out = Runner(registry=c.registry, clock=Clock()).execute(pb, base(), {}, actx())
    assert out.status == FAILED and "division by zero" in out.records["flaky"].error
    assert c.calls == {}


def test_start_delay_waits_until_due_then_runs_once():
    c = Counter()
    clock = Clock()
    runner = Runner(registry=c.registry, clock=clock)
    pb = playbook(
        """
        - ref: later
          action: test.count
          start_delay: 60
          args: {value: 1}
        - ref: after
          action: test.count
          depends_on: [later]
          args: {value: 2}
        - ref: now
          action: test.count
          args: {value: 0}
        """,
        c.registry,
    )
    out = runner.execute(pb, base(), {}, actx())
    assert out.status == WAITING and out.not_before == T0 + timedelta(seconds=60)
    assert statuses(out) == {"later": WAITING, "now": SUCCEEDED}
    assert c.calls == {"count": 1}

    clock.advance(59)
    out = runner.execute(pb, base(), out.records, actx())
    assert out.status == WAITING and c.calls == {"count": 1}

    clock.advance(1)
    out = runner.execute(pb, base(), out.records, actx())
    assert out.status == SUCCEEDED
    assert statuses(out) == {"later": SUCCEEDED, "after": SUCCEEDED, "now": SUCCEEDED}
    assert out.records["later"].attempts == 1
    assert c.calls == {"count": 3}  # each step exactly once

    again = runner.execute(pb, base(), out.records, actx())  # nothing left to do
    assert again.status == SUCCEEDED and again.changed == [] and c.calls == {"count": 3}


def test_start_delay_as_a_duration_string():
    c = Counter()
    clock = Clock()
    pb = playbook(
        """
        - ref: later
          action: test.count
          start_delay: 2m
        """,
        c.registry,
    )
    out = Runner(registry=c.registry, clock=clock).execute(pb, base(), {}, actx())
    assert out.not_before == T0 + timedelta(minutes=2)


def test_a_resumed_run_never_repeats_recorded_steps():
    c = Counter()
    pb = playbook(
        """
        - ref: a
          action: test.count
          args: {value: 1}
        - ref: b
          action: test.count
          depends_on: [a]
          args: {value: "${{ ACTIONS.a.result + 1 }}"}
        - ref: c
          action: test.broken
          depends_on: [b]
        """,
        c.registry,
    )
    runner = Runner(registry=c.registry, clock=Clock())
    done = {
        "a": StepRecord("a", "test.count", SUCCEEDED, attempts=1, result=41),
        "b": StepRecord("b", "test.count", SUCCEEDED, attempts=1, result=42),
    }
    out = runner.execute(pb, base(), done, actx())
    assert c.calls == {"broken": 1}
    assert out.changed == ["c"]
    assert out.records["a"] is done["a"] and out.records["b"] is done["b"]

    # the failed step is re-run after a retry (the engine deletes its record), the others not
    retried = {k: v for k, v in out.records.items() if v.status == SUCCEEDED}
    runner.execute(pb, base(), retried, actx())
    assert c.calls == {"broken": 2}


def test_recorded_results_feed_the_steps_that_still_run():
    c = Counter()
    pb = playbook(
        """
        - ref: a
          action: test.count
        - ref: b
          action: test.count
          depends_on: [a]
          args: {value: "${{ ACTIONS.a.result * 2 }}"}
        """,
        c.registry,
    )
    done = {"a": StepRecord("a", "test.count", SUCCEEDED, attempts=1, result=21)}
    out = Runner(registry=c.registry).execute(pb, base(), done, actx())
    assert out.records["b"].result == 42 and c.calls == {"count": 1}


# -- secrets and budgets ---------------------------------------------------------------------

SECRET = "s3cr3t-t0ken-value"


def test_secrets_are_masked_in_recorded_inputs_results_and_errors():
    c = Counter()
    pb = playbook(
        """
        - ref: echo
          action: test.count
          args:
            value:
              header: "Bearer ${{ SECRETS.api.KEY }}"
              raw: ${{ SECRETS.api.KEY }}
              "${{ SECRETS.api.KEY }}": key
        - ref: broken
          action: test.broken
          args: {value: "${{ SECRETS.api.KEY }}"}
        """,
        c.registry,
    )
    ctx = {**base(), "SECRETS": {"api": {"KEY": SECRET}}}
    out = Runner(registry=c.registry).execute(pb, ctx, {}, actx(), secret_values=[SECRET])
    echo = out.records["echo"]
    assert echo.input == {"value": {"header": "Bearer ***", "raw": "***", "***": "key"}}
    assert echo.result == {"header": "Bearer ***", "raw": "***", "***": "key"}
    assert out.records["broken"].error == "bad argument ***"
    assert out.records["broken"].input == {"value": "***"}
    assert SECRET not in repr(out)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("plain-secret-1", id="plain"),
        pytest.param("ünïcödé-secret", id="unicode"),
        pytest.param('pa"ss-word-1', id="quote"),
        pytest.param("back\\slash-1", id="backslash"),
        pytest.param("tab\tsecret-1", id="control"),
    ],
)
def test_secrets_with_any_characters_are_masked(secret):
    c = Counter()
    pb = playbook(
        """
        - ref: echo
          action: test.count
          args: {value: "Basic ${{ SECRETS.api.KEY }}"}
        """,
        c.registry,
    )
    ctx = {**base(), "SECRETS": {"api": {"KEY": secret}}}
    out = Runner(registry=c.registry).execute(pb, ctx, {}, actx(), secret_values=[secret])
    assert out.records["echo"].input == {"value": "Basic ***"}
    assert out.records["echo"].result == "Basic ***"


def test_without_secret_values_nothing_is_masked():
    c = Counter()
    pb = playbook(
        """
        - ref: echo
          action: test.count
          args: {value: "${{ SECRETS.api.KEY }}"}
        """,
        c.registry,
    )
    ctx = {**base(), "SECRETS": {"api": {"KEY": SECRET}}}
    out = Runner(registry=c.registry).execute(pb, ctx, {}, actx())
    assert out.records["echo"].result == SECRET


def test_a_lambda_over_a_huge_list_fails_the_step_on_the_budget():
    out = run(
        """
        - ref: big
          action: core.transform.map
          args: {items: "${{ TRIGGER.items }}", python_lambda: "lambda x: x + 1"}
        - ref: fine
          action: core.transform.reshape
          args: {value: 1}
        """,
        {"items": list(range(300_000))},
    )
    assert out.records["big"].status == FAILED
    assert "budget" in out.records["big"].error
    assert out.records["fine"].status == SUCCEEDED
    assert out.status == FAILED


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("${{ 'ab' * 100000000 }}", "over the limit"),
        ("${{ FN.range(0, 10000000) }}", "over the limit"),
        ("${{ FN.range(0, 1000000) }}", "step budget exhausted"),
        ("${{ FN.length(FN.range(0, 2000) * 1000) }}", "over the limit"),
    ],
)
def test_an_expression_bomb_fails_the_step_with_a_clear_error(expression, message):
    out = run(
        f"""
        - ref: bomb
          action: core.transform.reshape
          args: {{value: "{expression}"}}
        """
    )
    assert out.records["bomb"].status == FAILED
    assert message in out.records["bomb"].error
    assert len(out.records["bomb"].error) < 3000


def test_a_bomb_in_run_if_or_for_each_fails_the_step_too():
    out = run(
        """
        - ref: cond
          action: core.transform.reshape
          run_if: ${{ FN.length('ab' * 100000000) > 0 }}
          args: {value: 1}
        - ref: loop
          action: core.transform.reshape
          for_each: ${{ for var.x in FN.range(0, 10000000) }}
          args: {value: 1}
        """
    )
    assert statuses(out) == {"cond": FAILED, "loop": FAILED}


def test_a_nested_repetition_bomb_fails_the_step():
    out = run(
        """
        - ref: bomb
          action: core.transform.reshape
          args: {value: "${{ [[[1] * 1000] * 1000] * 1000 }}"}
        """
    )
    status = out.records["bomb"].status  # not the record: its repr alone would take minutes
    assert status == FAILED
