"""Folding rules: validation with positions, matching, keys and fall-through."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.alerts import fim_alert, sample, sshd_alert

from casefold.errors import ConfigError
from casefold.folding.rules import (
    MAX_KEY_LEN,
    choose,
    load_rules,
    lookup,
    parse_duration,
    parse_rules,
)
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.store.tables import cases


def decide(rules, raw):
    d = choose(rules, parse_wazuh_alert(raw), raw)
    return (d.rule.name, d.key) if d else None


def test_first_matching_rule_with_a_complete_key_wins():
    rules = parse_rules(
        {
            "rules": [
                {"name": "by-ip", "match": {"groups": ["sshd"]}, "key": ["rule.id", "data.srcip"]},
                {"name": "by-agent", "key": ["agent.id", "rule.id"]},
            ]
        },
        "t",
    )
    assert decide(rules, sshd_alert(1, srcip="198.51.100.4")) == ("by-ip", "5712/198.51.100.4")
    no_ip = sshd_alert(2)
    del no_ip["data"]["srcip"]
    assert decide(rules, no_ip) == ("by-agent", "000/5712")  # falls through: key incomplete
    assert decide(rules, fim_alert(1)) == ("by-agent", "010/554")


def test_match_conditions():
    rules = parse_rules(
        {
            "rules": [
                {"name": "hi", "match": {"min_level": 12, "max_level": 14}, "key": "rule.id"},
                {
                    "name": "ids",
                    "match": {"rule_ids": [5712, "5710"], "source": "wazuh"},
                    "key": "rule.id",
                },
            ]
        },
        "t",
    )
    assert decide(rules, sshd_alert(1, level=13))[0] == "hi"
    assert decide(rules, sshd_alert(1, level=10))[0] == "ids"
    assert decide(rules, sshd_alert(1, level=3, rule_id="1")) is None


def test_list_values_join_sorted():
    assert lookup({"rule": {"mitre": {"id": ["T2", "T1"]}}}, "rule.mitre.id") == "T1,T2"
    assert lookup({"a": {"b": "null"}}, "a.b") is None
    assert lookup({"a": {"b": {"c": 1}}}, "a.b") is None


def test_durations():
    assert parse_duration("90s", "w") == timedelta(seconds=90)
    assert parse_duration("2d", "w") == timedelta(days=2)
    assert parse_duration(30, "w") == timedelta(seconds=30)
    for bad in ("0m", "soon", -5, True):
        with pytest.raises(ConfigError):
            parse_duration(bad, "w")


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({}, "t: a folding rules file"),
        ({"rules": [{"key": "a"}]}, "t: rules[0].name"),
        ({"rules": [{"name": "a", "key": "x"}, {"name": "a", "key": "x"}]}, "rules[1].name"),
        ({"rules": [{"name": "a"}]}, "rules[0].key"),
        ({"rules": [{"name": "a", "key": "x", "window": "soon"}]}, "rules[0].window"),
        ({"rules": [{"name": "a", "key": "x", "match": {"level": 3}}]}, "rules[0].match.level"),
        ({"rules": [{"name": "a", "key": "x", "max_alerts": 0}]}, "rules[0].max_alerts"),
        ({"rules": [{"name": "a", "key": "x", "colour": 1}]}, "rules[0].colour"),
    ],
)
def test_invalid_rules_name_their_position(doc, where):
    with pytest.raises(ConfigError) as exc:
        parse_rules(doc, "t")
    assert where in str(exc.value)


def test_bundled_rules_load_and_cover_every_sample(samples_dir):
    rules = load_rules()
    for path in samples_dir.glob("*.json"):
        if "active_response" in path.name:
            continue
        assert decide(rules, sample(path.name)) is not None, path.name


def test_rules_file_errors(tmp_path):
    bad = tmp_path / "r.yml"
    bad.write_text("rules: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yml")


def test_a_key_past_the_stores_length_keeps_its_start_and_a_digest_of_the_rest():
    rules = parse_rules({"rules": [{"name": "by-ip", "key": ["data.srcip"]}]}, "t")
    first = decide(rules, sshd_alert(1, srcip="a" * 700 + "1"))
    second = decide(rules, sshd_alert(2, srcip="a" * 700 + "2"))
    assert first is not None and second is not None
    assert first[1] != second[1] and len(first[1]) == len(second[1]) == MAX_KEY_LEN
    assert first[1].startswith("a" * 500)
    assert decide(rules, sshd_alert(3, srcip="a" * 700 + "1")) == first  # the same key again
    assert MAX_KEY_LEN == cases.c.fold_key.type.length
    short = "b" * MAX_KEY_LEN
    assert decide(rules, sshd_alert(4, srcip=short)) == ("by-ip", short)


@pytest.mark.parametrize("tag", ["", "  ", "t" * 201, 7])
def test_a_rule_tag_a_case_cannot_hold_is_refused_at_load(tag):
    with pytest.raises(ConfigError, match=r"rules\[0\]\.tags"):
        parse_rules({"rules": [{"name": "a", "key": "x", "tags": ["ok", tag]}]}, "t")
