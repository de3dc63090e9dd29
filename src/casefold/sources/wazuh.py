"""Wazuh alert (alerts.json line, integratord temp file or indexer document) → NormalizedAlert.

Pure: no I/O. The only exception that escapes is `InvalidAlertError`, whatever the input dict
looks like: `data.*` is an arbitrary tree whose scalars the JSON decoder turned into strings
("66", "true", "null"), so every lookup below is type-checked and wrong types are skipped.
See research wazuh.md §4 and §B.7–B.10, external-apis.md §1.2.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from casefold.errors import InvalidAlertError
from casefold.sources.model import NormalizedAlert
from casefold.sources.observables import (
    ObservableSet,
    classify_ip,
    normalize_domain,
    normalize_hostname,
    normalize_url,
    parse_query_results,
    parse_sysmon_hashes,
    undouble_backslashes,
)

SOURCE = "wazuh"

# Keys the Filebeat pipeline / indexer add to a document (SOURCES.md). They are dropped before
# content-hashing so an alert exported from alerts.json and from the indexer hashes the same.
INDEXER_ONLY_KEYS = frozenset({"@timestamp", "_id", "input", "GeoLocation"})

# `%FT%T[.frac](Z|±HH[:]MM)`: analysisd writes "+0200" without a colon; the indexer writes "Z".
# Deliberately stricter than datetime.fromisoformat, which also takes dates without a time or an
# offset and would turn a malformed timestamp into a silently wrong (naive/local) one.
_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))"
)
# Wazuh rule levels are 0..16 (analysisd refuses to load anything else).
MAX_LEVEL = 16
# Bounded so a huge digit string never reaches int().
_LEVEL_RE = re.compile(r"\+?[0-9]{1,3}")

# Values the JSON decoder produces for a JSON null or that carry no information.
_ABSENT = frozenset({"", "null"})
# User placeholders: Windows writes "-" for "no account"; SYSTEM is a real account and is kept.
_NON_USERS = frozenset({"", "-", "null", "n/a"})

# (dotted path under the alert, …) for each observable family. Order matters: the first field
# that reports a value is the one recorded.
_IP_FIELDS = (
    "data.srcip",
    "data.src_ip",
    "data.dstip",
    "data.dest_ip",
    "data.win.eventdata.ipAddress",
    "data.win.eventdata.sourceIp",
    "data.win.eventdata.destinationIp",
    "data.aws.sourceIPAddress",
    "data.office365.ClientIP",
    "data.crowdsec.alert.source.ip",
)
_HASH_FIELDS = (
    ("syscheck.sha256_after", "sha256"),
    ("syscheck.sha1_after", "sha1"),
    ("syscheck.md5_after", "md5"),
    ("data.osquery.columns.sha256", "sha256"),
    ("data.osquery.columns.sha1", "sha1"),
    ("data.osquery.columns.md5", "md5"),
    ("data.virustotal.source.sha1", "sha1"),
    ("data.virustotal.source.md5", "md5"),
)
_PLAIN_USER_FIELDS = ("data.srcuser", "data.dstuser")
# Eventchannel values carry doubled backslashes (MYORG\\\\jromero) that we undo.
_WINDOWS_USER_FIELDS = ("data.win.eventdata.targetUserName", "data.win.eventdata.user")
_DOMAIN_FIELDS = ("data.win.eventdata.queryName", "data.dns.question.name")
_HOSTNAME_FIELDS = ("data.hostname", "data.win.system.computer", "predecoder.hostname")


def parse_wazuh_alert(raw: Any) -> NormalizedAlert:
    """Normalise one Wazuh alert. Raises InvalidAlertError (with `field`) when it is unusable.

    An active-response stdin message is not an alert: pass its `parameters.alert`.
    """
    alert = wazuh_header(raw)
    rule = raw["rule"]
    mitre = _dict(rule.get("mitre"))
    agent_ip = classify_ip(_dict(raw.get("agent")).get("ip"))  # "<client IP>", "any": no address
    alert.groups = _str_list(rule.get("groups"))
    alert.mitre_ids = _str_list(mitre.get("id"))
    alert.tactics = _str_list(mitre.get("tactic"))
    alert.techniques = _str_list(mitre.get("technique"))
    alert.agent_ip = agent_ip.value if agent_ip is not None else None
    alert.location = _text(raw.get("location"))
    alert.observables = extract_observables(raw).to_list()
    return alert


def wazuh_header(raw: Any) -> NormalizedAlert:
    """The part of `parse_wazuh_alert` that validates and identifies an alert: its id, node,
    time, level, rule, title and agent. Groups, MITRE, location and observables stay empty.

    Raises exactly what `parse_wazuh_alert` raises, so an alert this accepts always normalises.
    File intake stores alerts with this alone and folding completes them (a third of the cost).
    """
    if not isinstance(raw, dict):
        raise InvalidAlertError("alert must be a JSON object")

    rule = raw.get("rule")
    if not isinstance(rule, dict):
        hint = ""
        if isinstance(raw.get("parameters"), dict) and "alert" in raw["parameters"]:
            hint = " (this looks like an active-response message: pass its parameters.alert)"
        raise InvalidAlertError(f"alert has no 'rule' object{hint}", field="rule")
    level = _rule_level(rule.get("level", _MISSING))
    time_original, time_utc = _alert_time(raw)

    rule_id = _id_text(rule.get("id"))
    title = _text(rule.get("description")) or (
        f"Wazuh rule {rule_id}" if rule_id is not None else "Wazuh alert"
    )
    agent = _dict(raw.get("agent"))
    manager = _text(_dict(raw.get("manager")).get("name"))
    node = _text(_dict(raw.get("cluster")).get("node")) or manager or "unknown"

    return NormalizedAlert(
        source=SOURCE,
        source_id=_source_id(raw),
        node=node,
        time_original=time_original,
        time_utc=time_utc,
        title=title,
        level=level,
        rule_id=rule_id,
        agent_id=_id_text(agent.get("id")),
        agent_name=_text(agent.get("name")),
        manager=manager,
    )


def wazuh_timestamp(value: str) -> datetime:
    """Parse a Wazuh/indexer timestamp into an aware UTC datetime.

    Accepts "2022-11-17T19:17:42.694+0200", "+02:00", "Z" and no fraction. Fractions beyond
    microseconds are truncated. Raises InvalidAlertError(field="timestamp") otherwise.
    """
    text = value.strip() if isinstance(value, str) else ""
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise InvalidAlertError(
            f"timestamp {_preview(value)} is not an ISO 8601 date-time with a UTC offset",
            field="timestamp",
        )
    try:
        # The pattern has vouched for the shape; the C parser reads it five times faster than
        # the parts below (a tenth of the tailer's time), and reads it the same way.
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # what it does not take, the parts below explain
        return _timestamp_from_parts(match, value)


def _timestamp_from_parts(match: re.Match[str], value: str) -> datetime:
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    try:
        if zulu:
            tz: timezone = UTC
        else:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)  # ValueError when ≥ 24 h
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # bad day/month/offset; year 1/9999 edge
        raise InvalidAlertError(
            f"timestamp {_preview(value)} is out of range: {exc}", field="timestamp"
        ) from None


def alert_content_hash(raw: dict[str, Any]) -> str:
    """Return "sha256:<hex>" of the alert's canonical JSON, ignoring indexer-only keys."""
    body = {k: v for k, v in raw.items() if k not in INDEXER_ONLY_KEYS}
    try:
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # orjson refuses ints beyond 64 bits (Python's json parser produces them) and nesting
        # deeper than 255; the stdlib encoder is the deterministic fallback for those.
        try:
            canonical = json.dumps(
                body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
            ).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError, RecursionError) as exc:  # non-str keys, huge ints, depth
            raise InvalidAlertError(
                f"alert has no 'id' and its content cannot be hashed as JSON: {exc}", field="id"
            ) from None
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def extract_observables(raw: dict[str, Any]) -> ObservableSet:
    """Observables of a Wazuh alert (wazuh.md §B.10, external-apis.md §1.2), de-duplicated."""
    found = ObservableSet()
    # One walk collects every field we look at, visiting only keys the alert has; looking each
    # dotted path up separately was a third of intake CPU.
    values: dict[str, Any] = {}
    _collect(_FIELD_TREE, raw, values)
    if not values:
        return found
    get = values.get

    for path in _IP_FIELDS:
        if path in values:
            found.add_ip(values[path], path)
    _add_dns_answers(found, get("data.dns.answers"))
    for info in parse_query_results(get("data.win.eventdata.queryResults")):
        found.add(
            "ip", info.value, "data.win.eventdata.queryResults", kind=info.kind, public=info.public
        )

    for path, kind in _HASH_FIELDS[:3]:  # syscheck first: it is the file the alert is about
        if path in values:
            found.add_hash(values[path], path, kind)
    for kind, digest in parse_sysmon_hashes(get("data.win.eventdata.hashes")):
        found.add("hash", digest, "data.win.eventdata.hashes", kind=kind)
    for path, kind in _HASH_FIELDS[3:]:
        if path in values:
            found.add_hash(values[path], path, kind)

    for path in _DOMAIN_FIELDS:
        domain = normalize_domain(get(path))
        if domain is not None:
            found.add("domain", domain, path)

    for path in _PLAIN_USER_FIELDS + _WINDOWS_USER_FIELDS:
        user = get(path)
        if not isinstance(user, str):
            continue
        user = user.strip()
        if path in _WINDOWS_USER_FIELDS:
            user = undouble_backslashes(user)
        if user.lower() not in _NON_USERS:
            found.add("user", user, path)

    url = normalize_url(get("data.url"))
    if url is not None:
        found.add("url", url, "data.url")
    execve = get("data.audit.execve")
    if isinstance(execve, dict):
        for key, arg in execve.items():
            url = normalize_url(arg)
            if url is not None:
                found.add("url", url, f"data.audit.execve.{key}")

    for path in _HOSTNAME_FIELDS:
        if path not in values:
            continue
        value = values[path]
        host = normalize_hostname(value)
        if host is not None:
            found.add("hostname", host, path)
        else:
            # why: a syslog predecoder "hostname" is often the sender's IP address
            found.add_ip(value, path)
    return found


def _field_tree(paths: tuple[str, ...]) -> dict[str, Any]:
    """Nested dict of the dotted paths: inner nodes are dicts, leaves are the path itself."""
    tree: dict[str, Any] = {}
    for path in paths:
        *parents, last = path.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = path
    return tree


def _collect(tree: dict[str, Any], obj: dict[str, Any], out: dict[str, Any]) -> None:
    """Every path of `tree` present in `obj` (and not null), into `out`."""
    for key, sub in tree.items():
        value = obj.get(key)
        if value is None:
            continue
        if sub.__class__ is str:
            out[sub] = value
        elif isinstance(value, dict):
            _collect(sub, value, out)


_FIELD_TREE = _field_tree(
    (
        *_IP_FIELDS,
        "data.dns.answers",
        "data.win.eventdata.queryResults",
        *(path for path, _kind in _HASH_FIELDS),
        "data.win.eventdata.hashes",
        *_DOMAIN_FIELDS,
        *_PLAIN_USER_FIELDS,
        *_WINDOWS_USER_FIELDS,
        "data.url",
        "data.audit.execve",
        *_HOSTNAME_FIELDS,
    )
)


# --- helpers ---------------------------------------------------------------------------------

_MISSING = object()


def _rule_level(value: Any) -> int:
    if value is _MISSING or value is None:
        raise InvalidAlertError("rule.level is required", field="rule.level")
    level: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):  # why: True is an int in Python
        level = value
    elif isinstance(value, str) and _LEVEL_RE.fullmatch(value.strip()):
        level = int(value.strip())
    if level is None:
        raise InvalidAlertError(
            f"rule.level must be an integer, got {_preview(value)}", field="rule.level"
        )
    if not 0 <= level <= MAX_LEVEL:
        raise InvalidAlertError(
            f"rule.level must be between 0 and {MAX_LEVEL}, got {_preview(level)}",
            field="rule.level",
        )
    return level


def _alert_time(raw: dict[str, Any]) -> tuple[str, datetime]:
    value = raw.get("timestamp")
    if value is None and isinstance(raw.get("@timestamp"), str):
        value = raw["@timestamp"]  # indexer document that kept only @timestamp
    if value is None:
        raise InvalidAlertError("timestamp is required", field="timestamp")
    if not isinstance(value, str):
        raise InvalidAlertError(
            f"timestamp must be a string, got {_preview(value)}", field="timestamp"
        )
    return value, wazuh_timestamp(value)


def _source_id(raw: dict[str, Any]) -> str:
    alert_id = raw.get("id")
    if isinstance(alert_id, str) and alert_id.strip():
        return alert_id
    # No producer id (abridged or hand-made alerts): the content is the identity.
    return alert_content_hash(raw)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """A non-empty string, or None ("null" from the JSON decoder counts as absent)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return None if text in _ABSENT else text


def _id_text(value: Any) -> str | None:
    """Ids are strings in Wazuh ("000", "5712"); tolerate a bare int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _str_list(value: Any) -> list[str]:
    """List of strings; a lone string becomes a one-element list, other items are skipped."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [text for item in value if (text := _text(item)) is not None]


def _add_dns_answers(found: ObservableSet, answers: Any) -> None:
    if isinstance(answers, dict):
        answers = [answers]
    if not isinstance(answers, list):
        return
    for answer in answers:
        if isinstance(answer, dict):
            record_type = answer.get("type")
            if isinstance(record_type, str) and record_type.strip().upper() in ("A", "AAAA"):
                found.add_ip(answer.get("data"), "data.dns.answers")


def _preview(value: Any) -> str:
    """Short repr for error messages: never echo a whole (possibly huge) payload back."""
    if not isinstance(value, str | int | float | bool | type(None)):
        return type(value).__name__  # why: repr of a deep container can hit the recursion limit
    try:
        text = repr(value)
    except ValueError:  # an int over 3.11's 4300-digit str() limit
        return "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."
