"""Which Wazuh alerts wazuh-opencti inspects, what it looks up, and the context it reports.

The branch table of external-apis.md §1.2, tested in order, first match wins, with the
integration's bugs fixed: hashes are lower-cased, IPv6 is compressed and IPv4-mapped addresses
become IPv4, the empty file's hash is never asked about, an IDS alert between two private hosts
is simply nothing to do, and audit command URLs are looked up as themselves.

Alerts are untrusted and Wazuh turns scalars into strings; nothing here raises on odd input:
an alert that does not fit gives `[]` or a partial context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from casefold.sources.observables import (
    classify_ip,
    is_empty_file_hash,
    normalize_domain,
    normalize_hash,
    normalize_url,
    parse_query_results,
    parse_sysmon_hashes,
)

# `re.match` semantics on purpose (a prefix match), as the integration does: sysmon_eid10…19
# groups enter branch 1 too and give nothing, since those events carry no hashes.
_SYSMON_HASH_GROUP = re.compile(
    r"sysmon_(?:(?:event_?|eid)(?:1|6|7|15|23|24|25)|process-anomalies)"
)
_SYSMON_NETWORK_GROUP = re.compile(r"sysmon_(?:event|eid)3")
_SYSMON_DNS_GROUP = re.compile(r"sysmon_(?:event_|eid)22")
# A bare 64-hex run, for a Hashes string that is not in Sysmon's NAME=hex form.
_SHA256_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")

# `data` fields copied into the context (network alerts from Suricata, FortiGate and others).
_NETWORK_FIELDS = (
    "in_iface", "srcintf", "src_ip", "srcip", "src_mac", "srcmac", "src_port", "srcport",
    "dest_ip", "dstip", "dst_mac", "dstmac", "dest_port", "dstport", "dstintf", "proto",
    "app_proto",
)  # fmt: skip
_AUDIT_FIELDS = ("success", "key", "uid", "gid", "euid", "egid", "exe", "exit", "pid")
_IDS_ALERT_FIELDS = ("action", "category", "signature", "signature_id")

Pair = tuple[str, str]


def _get(node: Any, *path: str) -> Any:
    """The value at `path` in nested dicts, or None when any step is missing or not a dict."""
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _groups(alert: dict[str, Any]) -> list[str]:
    groups = _get(alert, "rule", "groups")
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        return []
    return [g for g in groups if isinstance(g, str)]


def _matches(pattern: re.Pattern[str], groups: Iterable[str]) -> bool:
    return any(pattern.match(g) for g in groups)


def _public_ip(value: Any) -> str | None:
    info = classify_ip(value)
    return info.value if info is not None and info.public else None


def _sha256(value: Any) -> list[Pair]:
    digest = normalize_hash(value, "sha256")
    if digest is None or is_empty_file_hash(digest):
        return []
    return [("hash", digest)]


def _sysmon_sha256(hashes: Any) -> list[Pair]:
    for kind, digest in parse_sysmon_hashes(hashes):
        if kind == "sha256":
            return _sha256(digest)
    found = _SHA256_RUN.search(hashes) if isinstance(hashes, str) else None
    return _sha256(found.group(0)) if found else []


def _domain_and_ips(name: Any, ips: Iterable[str]) -> list[Pair]:
    domain = normalize_domain(name)
    pairs: list[Pair] = [("domain", domain)] if domain else []
    return pairs + [("ip", ip) for ip in ips]


def _packetbeat_dns(data: dict[str, Any]) -> list[Pair]:
    answers = _get(data, "dns", "answers")
    ips = []
    for answer in answers if isinstance(answers, list) else []:
        if isinstance(answer, dict) and str(answer.get("type", "")).upper() in ("A", "AAAA"):
            ip = _public_ip(answer.get("data"))
            if ip is not None:
                ips.append(ip)
    return _domain_and_ips(_get(data, "dns", "question", "name"), ips)


def _ids_ip(data: dict[str, Any]) -> list[Pair]:
    # Destination first: in an outbound alert it is the remote end worth asking about.
    for key in ("dest_ip", "dstip", "src_ip", "srcip"):
        ip = _public_ip(data.get(key))
        if ip is not None:
            return [("ip", ip)]
    return []


def _execve_args(execve: Any) -> list[Any]:
    """The execve arguments in order (a0, a1, …, a10 after a9)."""
    if isinstance(execve, list):
        return list(execve)
    if not isinstance(execve, dict):
        return []

    def position(key: Any) -> tuple[int, str]:
        text = str(key)
        digits = text[1:] if text[:1] == "a" else ""
        return (int(digits) if digits.isdigit() else 1 << 30, text)

    return [execve[k] for k in sorted(execve, key=position)]


def alert_observables(alert: dict[str, Any]) -> list[Pair]:
    """(kind, value) pairs to look up in OpenCTI for one Wazuh alert; [] when none applies."""
    if not isinstance(alert, dict):
        return []
    try:
        pairs = _branch(alert, _groups(alert))
    except (TypeError, ValueError, AttributeError):  # why: odd input means nothing to look up
        return []
    return list(dict.fromkeys(pairs))


def _branch(alert: dict[str, Any], groups: list[str]) -> list[Pair]:
    data = alert.get("data")
    data = data if isinstance(data, dict) else {}
    eventdata = _get(data, "win", "eventdata")
    if _matches(_SYSMON_HASH_GROUP, groups):
        return _sysmon_sha256(_get(eventdata, "hashes"))
    if _matches(_SYSMON_NETWORK_GROUP, groups):
        ip = _public_ip(_get(eventdata, "destinationIp"))
        return [("ip", ip)] if ip else []
    if "ids" in groups:
        if data.get("method") == "QUERY" and isinstance(data.get("dns"), dict):
            return _packetbeat_dns(data)
        return _ids_ip(data)
    if _matches(_SYSMON_DNS_GROUP, groups):
        ips = [i.value for i in parse_query_results(_get(eventdata, "queryResults")) if i.public]
        return _domain_and_ips(_get(eventdata, "queryName"), ips)
    if "syscheck_file" in groups and (
        "syscheck_entry_added" in groups or "syscheck_entry_modified" in groups
    ):
        return _sha256(_get(alert, "syscheck", "sha256_after"))
    if "osquery" in groups or "osquery_file" in groups:
        # The osquery wodle nests results under data.osquery; the JSON decoder of an osquery
        # results log puts the same object straight under data.
        digest = _get(data, "osquery", "columns", "sha256")
        return _sha256(digest if digest is not None else _get(data, "columns", "sha256"))
    if "audit_command" in groups:
        urls = [normalize_url(a) for a in _execve_args(_get(data, "audit", "execve"))]
        return [("url", u) for u in urls if u]
    return []


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value != ""


def _copy(target: dict[str, Any], source: Any, fields: Iterable[str]) -> None:
    if not isinstance(source, dict):
        return
    for field in fields:
        if _scalar(source.get(field)):
            target[field] = source[field]


def alert_context(alert: dict[str, Any]) -> dict[str, Any]:
    """The `source` object wazuh-opencti attaches to each event: what the alert was about."""
    if not isinstance(alert, dict):
        return {}
    source: dict[str, Any] = {}
    if _scalar(alert.get("id")):
        source["alert_id"] = alert["id"]
    if _scalar(_get(alert, "rule", "id")):
        source["rule_id"] = alert["rule"]["id"]
    syscheck = alert.get("syscheck")
    if isinstance(syscheck, dict):
        for target, field in (
            ("file", "path"),
            ("md5", "md5_after"),
            ("sha1", "sha1_after"),
            ("sha256", "sha256_after"),
        ):
            if _scalar(syscheck.get(field)):
                source[target] = syscheck[field]
    data = alert.get("data")
    if not isinstance(data, dict):
        return source
    _copy(source, data, _NETWORK_FIELDS)
    dns = data.get("dns")
    if isinstance(dns, dict):
        name = _get(dns, "question", "name")
        if _scalar(name):
            source["queryName"] = name
        answers = dns.get("answers")
        results = [
            str(a["data"])
            for a in (answers if isinstance(answers, list) else [])
            if isinstance(a, dict) and _scalar(a.get("data"))
        ]
        if results:
            source["queryResults"] = ";".join(results)
    _copy(source, _get(data, "win", "eventdata"), ("queryName", "queryResults", "image"))
    audit = data.get("audit")
    if isinstance(audit, dict):
        args = [str(a) for a in _execve_args(audit.get("execve")) if _scalar(a)]
        if args:
            source["execve"] = " ".join(args)
        _copy(source, audit, _AUDIT_FIELDS)
    ids_alert: dict[str, Any] = {}
    _copy(ids_alert, data.get("alert"), _IDS_ALERT_FIELDS)
    if ids_alert:
        source["alert"] = ids_alert
    return source
