"""`casefold expr` and `casefold playbook validate`: the playbook author's tools."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from casefold.cli import app

runner = CliRunner()

CONTEXT = {
    "TRIGGER": {"rule": {"level": 12, "id": "5712"}, "data": {"srcip": "1.2.3.4"}},
    "ACTIONS": {"lookup": {"result": {"data": {"reputation": "malicious", "cves": []}}}},
    "VARS": {"thresholds": {"level": 10}},
    "SECRETS": {"crowdsec_cti": {"CTI_API_KEY": "k"}},
    "ENV": {"workflow": {"run_id": "r-1"}},
    "var": {"ip": "5.6.7.8"},
}

VALID = """\
title: Enrich
actions:
  - ref: lookup
    action: tools.crowdsec.lookup_ip_address
    args:
      ip_address: ${{ TRIGGER.data.srcip }}
  - ref: open_case
    action: core.cases.create_case
    depends_on: [lookup]
    args:
      summary: From ${{ TRIGGER.data.srcip }}
      description: ${{ ACTIONS.lookup.result.data.reputation }}
"""

BROKEN = """\
title: Broken
actions:
  - ref: a
    action: core.nope
  - ref: b
    action: core.reshape
    run_if: ${{ TRIGGER.x == }}
    args:
      value: ${{ ACTIONS.ghost.result }}
"""


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    path = tmp_path / "ctx.json"
    path.write_text(json.dumps(CONTEXT), encoding="utf-8")
    return path


def run(*args: str):
    return runner.invoke(app, list(args))


def test_typed_results_are_printed_as_json(context_file: Path):
    r = run("expr", "TRIGGER.rule.level > VARS.thresholds.level", "--context", str(context_file))
    assert r.exit_code == 0, r.output
    assert r.stdout == "true\n"
    r = run("expr", "[TRIGGER.rule.level, None, 'x', {'k': 1.5}]")
    assert r.exit_code == 0 and json.loads(r.stdout) == [None, None, "x", {"k": 1.5}]
    r = run("expr", "ACTIONS.lookup.result.data", "--context", str(context_file))
    assert r.stdout == '{\n  "reputation": "malicious",\n  "cves": []\n}\n'  # indent 2


def test_every_context_root_is_available(context_file: Path):
    source = "[SECRETS.crowdsec_cti.CTI_API_KEY, ENV.workflow.run_id, var.ip, TRIGGER.rule.id]"
    r = run("expr", source, "--context", str(context_file))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == ["k", "r-1", "5.6.7.8", "5712"]


def test_without_context_paths_are_null():
    r = run("expr", "TRIGGER.rule.level")
    assert r.exit_code == 0 and r.stdout == "null\n"


def test_datetimes_print_as_iso():
    r = run("expr", "FN.to_datetime('2024-01-02T03:04:05+00:00')")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == "2024-01-02T03:04:05+00:00"


def test_template(context_file: Path):
    r = run(
        "expr",
        "--template",
        "Level ${{ TRIGGER.rule.level }} from ${{ TRIGGER.data.srcip }}",
        "--context",
        str(context_file),
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == '"Level 12 from 1.2.3.4"\n'


def test_a_lone_template_keeps_its_type(context_file: Path):
    r = run("expr", "${{ TRIGGER.rule.level + 1 }}", "--context", str(context_file))
    assert r.exit_code == 0 and r.stdout == "13\n"
    r = run("expr", "--template", "${{ TRIGGER.rule }}", "--context", str(context_file))
    assert json.loads(r.stdout) == {"level": 12, "id": "5712"}


def test_parse_error_exits_2_with_a_caret():
    r = run("expr", "TRIGGER.a == ")
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith("casefold: unexpected end of expression at line 1, column")
    assert lines[1].strip() == "TRIGGER.a =="
    assert lines[2].strip() == "^"
    assert r.stdout == ""


def test_unknown_function_is_a_parse_error():
    r = run("expr", "FN.nope(1)")
    assert r.exit_code == 2 and "unknown function FN.nope" in r.stderr


def test_template_parse_error_exits_2():
    r = run("expr", "--template", "a ${{ 1 + }} b")
    assert r.exit_code == 2 and "column" in r.stderr and "^" in r.stderr


def test_evaluation_error_exits_1_on_one_line():
    r = run("expr", "1 / 0")
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("casefold: ")
    assert "division by zero" in r.stderr


def test_evaluation_error_from_context(context_file: Path):
    r = run("expr", "TRIGGER.data.srcip + 1", "--context", str(context_file))
    assert r.exit_code == 1 and r.stderr.count("\n") == 1


def test_missing_context_file(tmp_path: Path):
    r = run("expr", "1", "--context", str(tmp_path / "nope.json"))
    assert r.exit_code != 0
    assert r.stderr.count("\n") == 1
    assert "cannot read context file" in r.stderr and "nope.json" in r.stderr


def test_invalid_json_context_names_line_and_column(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "TRIGGER": {"a": 1,}\n}\n', encoding="utf-8")
    r = run("expr", "1", "--context", str(bad))
    assert r.exit_code != 0 and r.stderr.count("\n") == 1
    assert "not valid JSON at line 2, column" in r.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [("[1, 2]", "JSON object"), ('{"TRIGER": {}}', "unknown context key 'TRIGER'")],
)
def test_context_must_be_an_object_of_known_roots(tmp_path: Path, content: str, expected: str):
    path = tmp_path / "ctx.json"
    path.write_text(content, encoding="utf-8")
    r = run("expr", "1", "--context", str(path))
    assert r.exit_code != 0 and expected in r.stderr and r.stderr.count("\n") == 1


def test_validate_ok(tmp_path: Path):
    path = tmp_path / "enrich.yml"
    path.write_text(VALID, encoding="utf-8")
    r = run("playbook", "validate", str(path))
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{path}: ok (2 actions)\n"


def test_validate_lists_every_problem_with_its_line(tmp_path: Path):
    good = tmp_path / "enrich.yml"
    good.write_text(VALID, encoding="utf-8")
    bad = tmp_path / "broken.yml"
    bad.write_text(BROKEN, encoding="utf-8")
    r = run("playbook", "validate", str(bad), str(good))
    assert r.exit_code == 1
    out = r.stdout
    assert f"{bad}:4: a: unknown action 'core.nope'" in out
    assert f"{bad}:7: b.run_if: unexpected end of expression" in out
    assert f"{bad}:5: b: ACTIONS.ghost names no action of this playbook" in out
    assert f"{good}: ok (2 actions)" in out  # the other files are still checked
    located = [line for line in out.splitlines() if line.startswith(f"{bad}:")]
    assert len(located) == 3


def test_validate_missing_and_empty_files(tmp_path: Path):
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    r = run("playbook", "validate", str(empty), str(tmp_path / "missing.yml"))
    assert r.exit_code == 1
    assert f"{empty}:1: the file is empty" in r.stdout
    assert f"{tmp_path / 'missing.yml'}:0: cannot read" in r.stdout


def test_playbook_group_has_validate():
    r = run("playbook", "--help")
    assert r.exit_code == 0 and "validate" in r.stdout


def test_expr_through_the_installed_command(context_file: Path):
    """The real entry point, in a subprocess: stdout is pure JSON."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "casefold",
            "expr",
            "ACTIONS.lookup.result.data.reputation",
            "--context",
            str(context_file),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == "malicious"
