"""Folding rules: an ordered list, first match wins. Pure: no database here.

A rule matches alerts (source, rule groups, level range, rule ids) and computes a group key from
dotted paths into the raw alert. Alerts with the same rule and key, close enough in time, share a
case. A rule whose key paths are missing from an alert does not match it, so the next rule gets a
chance: that is how "rule.id + data.srcip" falls back to "agent.id + rule.id" for alerts without a
source address.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from casefold.errors import ConfigError
from casefold.sources.model import NormalizedAlert
from casefold.store.tables import case_tags, cases

# What the store holds of a fold key and a tag. A longer key would fail every fold of its alert
# (PostgreSQL refuses it), so keys are bounded here; rule tags past it are refused at load.
MAX_KEY_LEN: int = cases.c.fold_key.type.length
MAX_TAG_LEN: int = case_tags.c.tag.type.length

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MATCH_KEYS = {"source", "groups", "min_level", "max_level", "rule_ids"}
_RULE_KEYS = {"name", "match", "key", "window", "max_alerts", "summary", "tags", "tag_groups"}


@dataclass(frozen=True)
class FoldRule:
    name: str
    key: tuple[str, ...]
    window: timedelta = timedelta(hours=1)
    max_alerts: int = 10_000
    sources: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()  # any one of them
    rule_ids: frozenset[str] = frozenset()
    min_level: int = 0
    max_level: int = 99
    summary: str = "{title}"
    tags: tuple[str, ...] = field(default_factory=tuple)
    tag_groups: bool = False  # the alert's groups (ExtraHop categories…) become case tags too

    def matches(self, alert: NormalizedAlert) -> bool:
        if self.sources and alert.source not in self.sources:
            return False
        if not (self.min_level <= alert.level <= self.max_level):
            return False
        if self.rule_ids and alert.rule_id not in self.rule_ids:
            return False
        if self.groups and self.groups.isdisjoint(alert.groups):
            return False
        return True

    def key_for(self, raw: dict[str, Any]) -> str | None:
        parts: list[str] = []
        for path in self.key:
            value = lookup(raw, path)
            if value is None:
                return None
            parts.append(value)
        return _bounded_key("/".join(parts))


@dataclass(frozen=True)
class FoldDecision:
    rule: FoldRule
    key: str


def _bounded_key(key: str) -> str:
    """The key, or past MAX_KEY_LEN its start a person can read and a digest of all of it, so
    two long keys that differ only at their ends still make two cases."""
    if len(key) <= MAX_KEY_LEN:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: MAX_KEY_LEN - len(digest) - 1]}~{digest}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    if minutes < 1:
        return f"{int(abs(seconds))} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def join_reason(decision: FoldDecision, nth: int, seconds_since_first: float) -> str:
    """Why an alert joined its case, as the timeline says it."""
    return (
        f"joined by rule {decision.rule.name}, key {decision.key}, "
        f"{_ordinal(nth)} alert in {_span(seconds_since_first)}"
    )


def lookup(raw: Any, path: str) -> str | None:
    """Value at a dotted path as a key part; lists become their sorted, comma-joined items."""
    node = raw
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if node is None or node == "" or node == "null":
        return None
    if isinstance(node, list):
        items = sorted(str(v) for v in node if v is not None and not isinstance(v, (dict, list)))
        return ",".join(items) if items else None
    if isinstance(node, dict):
        return None
    return str(node)


def choose(
    rules: list[FoldRule], alert: NormalizedAlert, raw: dict[str, Any]
) -> FoldDecision | None:
    for rule in rules:
        if rule.matches(alert):
            key = rule.key_for(raw)
            if key is not None:
                return FoldDecision(rule, key)
    return None


def parse_duration(value: Any, where: str) -> timedelta:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    m = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not m or int(m.group(1)) == 0:
        raise ConfigError(where, f"{value!r} is not a duration like 90s, 30m, 1h or 2d")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def _str_set(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ConfigError(where, "must be a string or a list of strings")
    return frozenset(str(v) for v in value)


def _int(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(where, "must be a non-negative integer")
    return value


def parse_rules(data: Any, origin: str) -> list[FoldRule]:
    """Validate a rules document; errors name the file, the rule and the key."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(origin, "a folding rules file holds `rules:`, a list of rules")
    rules: list[FoldRule] = []
    names: set[str] = set()
    for i, item in enumerate(data["rules"]):
        where = f"{origin}: rules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "must be a mapping")
        extra = set(item) - _RULE_KEYS
        if extra:
            raise ConfigError(f"{where}.{sorted(extra)[0]}", "unknown key")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name", "every rule needs a name")
        if name in names:
            raise ConfigError(f"{where}.name", f"duplicate rule name {name!r}")
        names.add(name)
        match = item.get("match") or {}
        if not isinstance(match, dict):
            raise ConfigError(f"{where}.match", "must be a mapping")
        extra = set(match) - _MATCH_KEYS
        if extra:
            raise ConfigError(f"{where}.match.{sorted(extra)[0]}", "unknown key")
        key = item.get("key")
        if isinstance(key, str):
            key = [key]
        if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
            raise ConfigError(f"{where}.key", "must be a dotted path or a list of them")
        max_alerts = _int(item.get("max_alerts"), f"{where}.max_alerts", 10_000)
        if max_alerts < 1:
            raise ConfigError(f"{where}.max_alerts", "must be at least 1")
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and t.strip() and len(t) <= MAX_TAG_LEN for t in tags
        ):
            raise ConfigError(
                f"{where}.tags", f"must be a list of non-empty strings of at most {MAX_TAG_LEN}"
            )
        tag_groups = item.get("tag_groups", False)
        if not isinstance(tag_groups, bool):
            raise ConfigError(f"{where}.tag_groups", "must be true or false")
        summary = item.get("summary", "{title}")
        if not isinstance(summary, str):
            raise ConfigError(f"{where}.summary", "must be a string")
        rules.append(
            FoldRule(
                name=name,
                key=tuple(key),
                window=parse_duration(item.get("window", "1h"), f"{where}.window"),
                max_alerts=max_alerts,
                sources=_str_set(match.get("source"), f"{where}.match.source"),
                groups=_str_set(match.get("groups"), f"{where}.match.groups"),
                rule_ids=_str_set(match.get("rule_ids"), f"{where}.match.rule_ids"),
                min_level=_int(match.get("min_level"), f"{where}.match.min_level", 0),
                max_level=_int(match.get("max_level"), f"{where}.match.max_level", 99),
                summary=summary,
                tags=tuple(tags),
                tag_groups=tag_groups,
            )
        )
    return rules


def load_rules(path: Path | None = None) -> list[FoldRule]:
    """The rules in `path`, or the bundled defaults."""
    if path is None:
        text = resources.files("casefold.folding").joinpath("default_rules.yml").read_text("utf-8")
        origin = "default_rules.yml"
    else:
        origin = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("folding_rules", f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(origin, f"not valid YAML{where}") from exc
    return parse_rules(data, origin)
