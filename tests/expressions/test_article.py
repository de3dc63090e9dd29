"""Every expression of the Wazuh → Tracecat ticketing article, verbatim."""

from __future__ import annotations

import pytest
import yaml

from casefold.expressions import compile_lambda, compile_template, compile_value

PRIORITY = (
    "${{ FN.lookup({ 'malicious': 'critical', 'suspicious': 'high', 'known': 'medium', "
    "'unknown': 'low' }, ACTIONS.stock_reputation.result) if ACTIONS.stock_reputation.result "
    "in ['malicious', 'suspicious', 'known', 'unknown'] else 'unknown' }}"
)

# The update_case node exactly as the article's YAML block writes it.
UPDATE_CASE_YAML = """\
case_id: ${{ ACTIONS.recup_case_id.result }}
priority: "${{ FN.lookup({ 'malicious': 'critical', 'suspicious': 'high', 'known': 'medium', 'unknown': 'low' }, ACTIONS.stock_reputation.result) if ACTIONS.stock_reputation.result in ['malicious', 'suspicious', 'known', 'unknown'] else 'unknown' }}"
severity:
  ${{
    "fatal" if ACTIONS.stock_level.result == 16
    else "critical" if ACTIONS.stock_level.result == 15
    else "high" if ACTIONS.stock_level.result >= 12
    else "medium" if ACTIONS.stock_level.result >= 4
    else "low"
  }}
"""  # noqa: E501

SEVERITY_BLOCK = """${{
    "fatal" if ACTIONS.stock_level.result == 16
    else "critical" if ACTIONS.stock_level.result == 15
    else "high" if ACTIONS.stock_level.result >= 12
    else "medium" if ACTIONS.stock_level.result >= 4
    else "low"
  }}"""


def test_reshape_inputs(ctx):
    assert compile_template("${{ TRIGGER.data.rule.groups }}").render(ctx) == ["crowdsec", "attack"]
    assert compile_template("${{ TRIGGER.data.data.crowdsec.alert.source.ip }}").render(ctx) == (
        "203.0.113.7"
    )
    assert compile_template("${{ TRIGGER.data.rule.level }}").render(ctx) == 12
    assert compile_template("${{ ACTIONS.create_case.result.id }}").render(ctx) == "case-123"
    assert (
        compile_template("${{ ACTIONS.lookup_ip_address.result.data.reputation }}").render(ctx)
        == "malicious"
    )


@pytest.mark.parametrize(("groups", "expected"), [(["crowdsec"], True), (["sshd"], False)])
def test_run_if_group_condition(make_context, groups, expected):
    t = compile_template("${{ 'crowdsec' in ACTIONS.stock_groups.result }}")
    assert t.render(make_context(groups=groups)) is expected


def test_create_case_inputs(ctx):
    args = compile_value(
        {
            "summary": "${{ TRIGGER.data.agent.name }}",
            "description": "${{ TRIGGER.data.data.crowdsec.alert.scenario }}",
            "status": "new",
            "priority": "unknown",
            "severity": "unknown",
        }
    )
    assert args.render(ctx) == {
        "summary": "web-01",
        "description": "crowdsecurity/http-bf-wordpress_bf",
        "status": "new",
        "priority": "unknown",
        "severity": "unknown",
    }
    assert args.references.actions == frozenset()
    assert args.references.roots == {"TRIGGER"}


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (16, "fatal"),
        (15, "critical"),
        (14, "high"),
        (12, "high"),
        (11, "medium"),
        (4, "medium"),
        (3, "low"),
        (0, "low"),
    ],
)
def test_severity_bands(make_context, level, severity):
    assert compile_template(SEVERITY_BLOCK).render(make_context(level=level)) == severity


@pytest.mark.parametrize(
    ("reputation", "priority"),
    [
        ("malicious", "critical"),
        ("suspicious", "high"),
        ("known", "medium"),
        ("unknown", "low"),
        ("benign", "unknown"),
        ("", "unknown"),
    ],
)
def test_priority_per_reputation(make_context, reputation, priority):
    assert compile_template(PRIORITY).render(make_context(reputation=reputation)) == priority


def test_update_case_node_from_yaml(make_context):
    args = compile_value(yaml.safe_load(UPDATE_CASE_YAML))
    out = args.render(make_context(level=15, reputation="suspicious"))
    assert out == {"case_id": "case-123", "priority": "high", "severity": "critical"}
    assert args.references.actions == {"recup_case_id", "stock_reputation", "stock_level"}
    assert args.references.functions == {"lookup"}


def test_map_lambda_and_comment(ctx):
    items = compile_template("${{ TRIGGER.data.data.crowdsec.alert.events[0].meta }}").render(ctx)
    fn = compile_lambda("lambda m: m['key'] + ': ' + m['value']")
    mapped = fn.map(items)
    assert mapped == [
        "target_fqdn: www.example.org",
        "target_uri: /wp-login.php",
        "http_status: 404",
    ]
    ctx["ACTIONS"]["map"] = {"result": mapped}
    comment = compile_value(
        yaml.safe_load(
            "case_id: ${{ ACTIONS.recup_case_id.result }}\n"
            "content: ${{ FN.join(ACTIONS.map.result, '\\n- ') }}\n"
        )
    ).render(ctx)
    assert comment == {
        "case_id": "case-123",
        "content": "target_fqdn: www.example.org\n- target_uri: /wp-login.php\n- http_status: 404",
    }


def test_lookup_ip_address_input(ctx):
    assert compile_value({"ip_address": "${{ ACTIONS.stock_ip.result }}"}).render(ctx) == {
        "ip_address": "203.0.113.7"
    }
