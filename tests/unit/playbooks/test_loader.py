"""The playbook loader: Tracecat DSL in, a compiled Playbook out, or every problem and its line."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

import casefold.actions.cases  # noqa: F401 - registers the actions the playbooks below use
import casefold.actions.core  # noqa: F401
import casefold.actions.cti  # noqa: F401
from casefold.expressions import Expression, Template
from casefold.playbooks.loader import PlaybookError, Problem, load_playbook, parse_playbook
from casefold.playbooks.model import Edge, Playbook, RetryPolicy

# Declared out of order on purpose: `comment` comes first but depends on the others.
ENRICH = """\
title: Enrich SSH brute force
description: Look up the source IP, open a case, comment its behaviors.
trigger:
  source: wazuh
  groups: [sshd, authentication_failed]
  min_level: 5
actions:
  - ref: comment
    action: core.cases.create_comment
    depends_on: [open_case.success, note_failure]
    join_strategy: any
    for_each: ${{ for var.b in ACTIONS.lookup_ip.result.data.behaviors }}
    args:
      case_id: ${{ ACTIONS.open_case.result.case_id }}
      content: "Behavior: ${{ var.b.label }}"
  - ref: lookup_ip
    action: tools.crowdsec.lookup_ip_address
    retry_policy:
      max_attempts: 3
      timeout: 10
    start_delay: 30
    args:
      ip_address: ${{ TRIGGER.data.srcip }}
  - ref: open_case
    action: core.cases.create_case
    depends_on: [lookup_ip]
    run_if: ${{ ACTIONS.lookup_ip.result.data.reputation == 'malicious' }}
    args:
      summary: Brute force from ${{ TRIGGER.data.srcip }}
      description: ${{ ACTIONS.lookup_ip.result.data.reputation }}
      severity: high
      tags: [crowdsec, "${{ TRIGGER.rule.id }}"]
  - ref: note_failure
    action: core.reshape
    depends_on: [lookup_ip.error]
    args:
      value: ${{ ACTIONS.lookup_ip.error }}
"""

CONTEXT = {
    "TRIGGER": {"data": {"srcip": "1.2.3.4"}, "rule": {"id": "5712"}},
    "ACTIONS": {
        "lookup_ip": {
            "result": {
                "data": {
                    "reputation": "malicious",
                    "behaviors": [{"label": "SSH Bruteforce"}, {"label": "HTTP Scan"}],
                }
            }
        },
        "open_case": {"result": {"case_id": "CASE-7"}},
    },
}


def load(text: str, path: str = "pb.yml") -> Playbook:
    return parse_playbook(textwrap.dedent(text), path)


def problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(PlaybookError) as err:
        load(text)
    return [(p.line, p.message) for p in err.value.problems]


def one_problem(text: str) -> tuple[int, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def step_yaml(ref: str = "a", action: str = "core.reshape", extra: str = "", args: str = "") -> str:
    """One action at lines 3-…: `ref` on line 3, `action` on 4, then `extra`, then args."""
    text = f"title: t\nactions:\n  - ref: {ref}\n    action: {action}\n"
    text += textwrap.indent(textwrap.dedent(extra), "    ") if extra else ""
    text += "    args:\n" + textwrap.indent(textwrap.dedent(args or "value: 1\n"), "      ")
    return text


# --- a valid playbook -------------------------------------------------------------------


def test_valid_playbook_loads_in_topological_order():
    pb = load(ENRICH, "playbooks/enrich_ssh.yml")
    assert pb.name == "enrich_ssh" and pb.title == "Enrich SSH brute force"
    assert pb.description.startswith("Look up the source IP")
    assert [s.ref for s in pb.steps] == ["lookup_ip", "open_case", "note_failure", "comment"]
    seen: set[str] = set()
    for step in pb.steps:
        assert {e.ref for e in step.depends_on} <= seen, step.ref
        seen.add(step.ref)
    assert len(pb.version) == 16 and pb.enabled and pb.path == "playbooks/enrich_ssh.yml"


def test_valid_playbook_compiles_every_part():
    pb = load(ENRICH)
    lookup, open_case, note, comment = (
        pb.step(r) for r in ("lookup_ip", "open_case", "note_failure", "comment")
    )
    # Tracecat's names resolve to Casefold's canonical ones.
    assert lookup.action == "cti.crowdsec.lookup_ip"
    assert open_case.action == "cases.create_case"
    assert note.action == "core.transform.reshape"
    assert comment.action == "cases.create_comment"

    assert lookup.retry == RetryPolicy(max_attempts=3, timeout=10.0)
    assert lookup.start_delay == timedelta(seconds=30)
    assert lookup.depends_on == () and lookup.line == 16
    assert lookup.args.render(CONTEXT) == {"ip_address": "1.2.3.4"}

    assert open_case.depends_on == (Edge("lookup_ip"),)
    assert isinstance(open_case.run_if, Template | Expression)
    assert open_case.run_if.render(CONTEXT) is True
    assert open_case.args.render(CONTEXT) == {
        "summary": "Brute force from 1.2.3.4",
        "description": "malicious",
        "severity": "high",
        "tags": ["crowdsec", "5712"],
    }
    assert open_case.args.references.actions == frozenset({"lookup_ip"})

    assert note.depends_on == (Edge("lookup_ip", on_error=True),)

    assert comment.depends_on == (Edge("open_case"), Edge("note_failure"))
    assert comment.join_any and not open_case.join_any
    [(name, items)] = comment.for_each
    assert name == "b"
    assert [b["label"] for b in items.evaluate(CONTEXT)] == ["SSH Bruteforce", "HTTP Scan"]
    ctx = {**CONTEXT, "var": {"b": {"label": "SSH Bruteforce"}}}
    assert comment.args.render(ctx) == {"case_id": "CASE-7", "content": "Behavior: SSH Bruteforce"}

    assert pb.trigger.sources == {"wazuh"} and pb.trigger.min_level == 5
    assert pb.trigger.groups == {"sshd", "authentication_failed"}


def test_defaults_of_a_minimal_step():
    [step] = load(step_yaml()).steps
    assert step.retry == RetryPolicy() and step.start_delay == timedelta(0)
    assert step.run_if is None and step.for_each == () and not step.join_any
    assert step.args.is_static and step.args.render({}) == {"value": 1}


def test_for_each_list_and_plain_run_if():
    pb = load(
        step_yaml(
            extra="""\
            run_if: TRIGGER.n > 1
            for_each:
              - ${{ for var.x in TRIGGER.xs }}
              - ${{ for var.y in TRIGGER.ys }}
            """,
            args="value: ${{ var.x + var.y }}\n",
        )
    )
    [step] = pb.steps
    assert isinstance(step.run_if, Expression) and step.run_if.evaluate({"TRIGGER": {"n": 2}})
    assert [name for name, _ in step.for_each] == ["x", "y"]


def test_tracecat_export_wrapped_in_definition_loads():
    export = """\
    definition:
      title: Lookup IP
      description: exported from Tracecat
      entrypoint:
        ref: lookup
        expects: {}
      config:
        environment: default
        timeout: 300
      triggers: []
      actions:
        - ref: lookup
          action: tools.crowdsec.lookup_ip_address
          args:
            ip_address: ${{ TRIGGER.ip }}
        - ref: reshape
          action: core.reshape
          depends_on: [lookup]
          args:
            value: ${{ ACTIONS.lookup.result.data.reputation }}
    layout:
      trigger: {x: 0, y: 0}
    webhook:
      methods: [POST]
      status: online
    schedules: []
    """
    pb = load(export)
    assert pb.title == "Lookup IP" and [s.ref for s in pb.steps] == ["lookup", "reshape"]
    assert pb.step("lookup").line == 12  # lines count from the top of the file


@pytest.mark.parametrize(
    ("alias", "canonical", "args"),
    [
        ("core.cases.create_case", "cases.create_case", "summary: s\ndescription: d\n"),
        ("tools.crowdsec.lookup_ip_address", "cti.crowdsec.lookup_ip", "ip_address: 1.2.3.4\n"),
        ("core.reshape", "core.transform.reshape", "value: 1\n"),
        ("core.transform.reshape", "core.transform.reshape", "value: 1\n"),
    ],
)
def test_tracecat_aliases_resolve(alias: str, canonical: str, args: str):
    [step] = load(step_yaml(action=alias, args=args)).steps
    assert step.action == canonical


def test_load_playbook_reads_a_file(tmp_path: Path):
    path = tmp_path / "enrich.yml"
    path.write_text(ENRICH, encoding="utf-8")
    pb = load_playbook(path)
    assert pb.name == "enrich" and pb.path == str(path) and len(pb.steps) == 4
    with pytest.raises(PlaybookError) as err:
        load_playbook(tmp_path / "missing.yml")
    [p] = err.value.problems
    assert p.line == 0 and "cannot read" in p.message


# --- every problem, with its line ---------------------------------------------------------


def test_duplicate_ref():
    text = step_yaml() + "  - ref: a\n    action: core.reshape\n    args:\n      value: 2\n"
    assert one_problem(text) == (7, "duplicate ref 'a'")


@pytest.mark.parametrize("ref", ["Lookup", "look-up", "a b", "''", "12.5"])
def test_bad_ref_name(ref: str):
    line, message = one_problem(step_yaml(ref=ref))
    assert line == 3 and "ref must match [a-z0-9_]+" in message


def test_missing_ref():
    text = "title: t\nactions:\n  - action: core.reshape\n    args:\n      value: 1\n"
    assert one_problem(text) == (3, "actions[0]: ref must match [a-z0-9_]+")


def test_unknown_ref_in_depends_on():
    line, message = one_problem(step_yaml(extra="depends_on: [nope]\n"))
    assert line == 3  # the step's own line
    assert message == "a: depends_on names unknown ref 'nope'"


def test_bad_depends_on_suffix():
    assert one_problem(step_yaml(extra="depends_on: [b.done]\n")) == (
        5,
        "a: depends_on 'b.done': the suffix must be .success or .error",
    )


@pytest.mark.parametrize(
    ("extra", "args"),
    [
        ("", "value: ${{ ACTIONS.ghost.result }}\n"),
        ("run_if: ${{ ACTIONS.ghost.result }}\n", ""),
        ("for_each: ${{ for var.x in ACTIONS.ghost.result }}\n", ""),
    ],
)
def test_unknown_actions_ref_inside_an_expression(extra: str, args: str):
    # Reported at the step's own line, whichever field holds the expression.
    assert one_problem(step_yaml(extra=extra, args=args)) == (
        3,
        "a: ACTIONS.ghost names no action of this playbook",
    )


def test_actions_refs_to_real_steps_are_fine():
    text = step_yaml() + (
        "  - ref: b\n    action: core.reshape\n    depends_on: [a]\n"
        "    args:\n      value: ${{ ACTIONS.a.result }}\n"
    )
    assert [s.ref for s in load(text).steps] == ["a", "b"]


def test_cycle_of_two():
    text = (
        "title: t\nactions:\n"
        "  - ref: a\n    action: core.reshape\n    depends_on: [b]\n    args:\n      value: 1\n"
        "  - ref: b\n    action: core.reshape\n    depends_on: [a]\n    args:\n      value: 2\n"
    )
    assert one_problem(text) == (3, "cycle in depends_on: a -> b -> a")


def test_self_cycle_and_longer_cycle():
    assert one_problem(step_yaml(extra="depends_on: [a]\n")) == (3, "cycle in depends_on: a -> a")
    text = (
        "title: t\nactions:\n"
        "  - ref: a\n    action: core.reshape\n    depends_on: [c.error]\n    args: {value: 1}\n"
        "  - ref: b\n    action: core.reshape\n    depends_on: [a]\n    args: {value: 1}\n"
        "  - ref: c\n    action: core.reshape\n    depends_on: [b]\n    args: {value: 1}\n"
    )
    assert one_problem(text) == (3, "cycle in depends_on: a -> c -> b -> a")


def test_unknown_action():
    assert one_problem(step_yaml(action="core.nope")) == (4, "a: unknown action 'core.nope'")


def test_missing_action():
    text = "title: t\nactions:\n  - ref: a\n    args:\n      value: 1\n"
    assert one_problem(text) == (3, "a: unknown action None")


def test_unknown_argument_name_points_at_that_argument():
    line, message = one_problem(step_yaml(args="value: 1\nbogus: 2\n"))
    assert message == "a: core.transform.reshape: unknown argument 'bogus' (allowed: value)"
    assert line == 7


def test_missing_required_argument():
    text = "title: t\nactions:\n  - ref: a\n    action: core.cases.create_case\n"
    text += "    args:\n      summary: s\n"
    line, message = one_problem(text)
    assert message == "a: cases.create_case: missing argument 'description'"
    assert line == 6
    no_args = "title: t\nactions:\n  - ref: a\n    action: core.reshape\n"
    assert one_problem(no_args) == (3, "a: core.transform.reshape: missing argument 'value'")


def test_unknown_fn_function():
    line, message = one_problem(step_yaml(extra="run_if: ${{ FN.nope(TRIGGER.x) }}\n"))
    assert line == 5
    assert message.startswith("a.run_if: unknown function FN.nope at line 1, column 8")


def test_unknown_fn_function_in_args_names_the_argument_line():
    text = step_yaml(
        action="core.cases.create_case",
        args="summary: ok\ndescription: ${{ FN.nope(1) }}\n",
    )
    line, message = one_problem(text)
    assert line == 7
    assert message.startswith("a.args.description: unknown function FN.nope")


def test_malformed_expression_reports_its_column():
    line, message = one_problem(step_yaml(extra="run_if: ${{ TRIGGER.a == }}\n"))
    assert line == 5
    first, source, caret = message.split("\n")
    assert first == "a.run_if: unexpected end of expression at line 1, column 18:"
    assert source.strip() == "${{ TRIGGER.a == }}"
    assert caret.index("^") == source.index("}}")


def test_malformed_expression_in_a_multiline_argument():
    text = step_yaml(args="value: |\n  first line\n  second ${{ 1 + }}\n")
    line, message = one_problem(text)
    assert line == 6
    assert "a.args.value:" in message and "line 2, column" in message


def test_malformed_for_each():
    line, message = one_problem(step_yaml(extra="for_each: ${{ for x in TRIGGER.xs }}\n"))
    assert line == 5 and message.startswith("a.for_each:")


def test_bad_join_strategy():
    assert one_problem(step_yaml(extra="join_strategy: some\n")) == (
        5,
        "a: join_strategy is all or any",
    )


def test_bad_retry_policy_values_each_on_its_line():
    found = problems(
        step_yaml(
            extra="""\
            retry_policy:
              max_attempts: 0
              timeout: -1
              backoff: soon
              max_backoff: true
              jitter: 1
            """
        )
    )
    assert sorted(found) == [
        (6, "a: retry_policy.max_attempts must be a number from 1 to 20"),
        (7, "a: retry_policy.timeout must be a number from 0.1 to 3600"),
        (8, "a: retry_policy.backoff must be a number from 0 to 3600"),
        (9, "a: retry_policy.max_backoff must be a number from 0 to 86400"),
        (10, "a: retry_policy: unknown key 'jitter'"),
    ]
    assert one_problem(step_yaml(extra="retry_policy: 3\n")) == (
        5,
        "a: retry_policy must be a mapping",
    )


def test_bad_start_delay():
    line, message = one_problem(step_yaml(extra="start_delay: soon\n"))
    assert line == 5 and "'soon' is not a duration" in message


def test_bad_yaml_reports_the_line():
    text = step_yaml() + "\tbroken: 2\n"
    [(line, message)] = problems(text)
    assert line == 7 and message.startswith("not valid YAML:")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str):
    assert problems(text) == [(1, "the file is empty")]


def test_not_a_mapping():
    assert problems("- a\n- b\n") == [(1, "a playbook is a mapping with title and actions")]


def test_unknown_keys_top_level_and_step():
    text = "title: t\ncolour: red\nactions:\n  - ref: a\n    action: core.reshape\n"
    text += "    colour: blue\n    args:\n      value: 1\n"
    assert problems(text) == [(2, "unknown key 'colour'"), (6, "a: unknown key 'colour'")]


def test_several_problems_in_one_file_are_all_reported():
    text = """\
    actions:
      - ref: a
        action: core.nope
      - ref: a
        action: core.reshape
        args:
          value: 1
      - ref: Bad
        action: core.reshape
      - ref: c
        action: core.reshape
        depends_on: [ghost]
        run_if: ${{ 1 + }}
        retry_policy:
          max_attempts: 99
        args:
          value: ${{ ACTIONS.phantom.result }}
          extra: ${{ FN.nope() }}
    """
    with pytest.raises(PlaybookError) as err:
        load(text)
    found = err.value.problems
    by_line = {(p.line, p.message.split("\n")[0]) for p in found}
    assert (1, "title is required") in by_line
    assert (3, "a: unknown action 'core.nope'") in by_line
    assert (4, "duplicate ref 'a'") in by_line
    assert (8, "actions[2]: ref must match [a-z0-9_]+") in by_line
    assert (10, "c: depends_on names unknown ref 'ghost'") in by_line
    assert (10, "c: ACTIONS.phantom names no action of this playbook") in by_line
    assert any(line == 13 and m.startswith("c.run_if:") for line, m in by_line)
    assert (15, "c: retry_policy.max_attempts must be a number from 1 to 20") in by_line
    assert any(
        line == 18 and m.startswith("c.args.extra: unknown function FN.nope") for line, m in by_line
    )
    assert any("unknown argument 'extra'" in m for _, m in by_line)
    assert len(found) == 10
    # str() of the error lists each problem as file:line: reason.
    rendered = str(err.value).splitlines()
    assert rendered[0] == "pb.yml:1: title is required"
    assert str(Problem("x.yml", 3, "boom")) == "x.yml:3: boom"


# --- regressions found while writing these tests ---------------------------------------------


def test_scalar_for_each_is_a_problem_not_a_crash():
    line, message = one_problem(step_yaml(extra="for_each: 5\n"))
    assert line == 5 and message.startswith("a.for_each")


def test_malformed_retry_until_is_reported():
    extra = "retry_policy:\n  retry_until: ${{ 1 + }}\n"
    line, message = one_problem(step_yaml(extra=extra))
    assert line == 6 and "retry_until" in message


def test_fractional_start_delay_in_seconds():
    [step] = load(step_yaml(extra="start_delay: 1.5\n")).steps
    assert step.start_delay == timedelta(seconds=1.5)


def test_line_bookkeeping_never_reaches_the_args():
    """Regression: `__line__` (and `__lines__`) were left in every mapping inside args."""
    text = step_yaml(args="value:\n  a: 1\n  nested:\n    - {b: 2}\n    - c: ${{ TRIGGER.c }}\n")
    [step] = load(text).steps
    assert step.args.render({"TRIGGER": {"c": 3}}) == {
        "value": {"a": 1, "nested": [{"b": 2}, {"c": 3}]}
    }
