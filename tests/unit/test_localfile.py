"""JSON lines for Wazuh's <localfile>: writing, rotation, permissions, threads; the lines' shape;
and the Wazuh rules that read them."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import casefold
from casefold.intake.localfile import (
    MAX_LINE_BYTES,
    JsonLinesWriter,
    encode_line,
    event_line,
    github_line,
)
from casefold.sources.github import parse_github_event, parse_standard_event

RULES = Path(casefold.__file__).parent / "wazuh_side" / "rules" / "casefold_github_rules.xml"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
LEAKED = "ghp_R3alLo0kingT0kenValue1234567890abcd"
RECEIVED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def read_lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- writer ----------------------------------------------------------------------------------


def test_lines_written_valid_json_one_per_record(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    records = [{"n": 1, "text": "multi\nline\u2028é\ud800"}, {"n": 2, "nested": {"a": [1, None]}}]
    with JsonLinesWriter(path) as writer:
        assert writer.write(records) == 2
        writer.write_one({"n": 3})
        assert writer.write([]) == 0
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and all(line.isascii() for line in lines)
    assert [json.loads(line) for line in lines] == [*records, {"n": 3}]


def test_created_with_mode_0640_despite_umask(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    old = os.umask(0o077)
    try:
        with JsonLinesWriter(path) as writer:
            writer.write_one({"a": 1})
    finally:
        os.umask(old)
    assert mode(path) == 0o640


def test_existing_file_is_appended_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b'{"old":true}\n')
    path.chmod(0o600)
    with JsonLinesWriter(path) as writer:
        writer.write_one({"new": True})
    assert read_lines(path) == [{"old": True}, {"new": True}]
    assert mode(path) == 0o600


def test_rotation_by_rename_then_new_file(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    record = {"pad": "x" * 80}
    line_size = len(encode_line(record))
    writer = JsonLinesWriter(path, max_bytes=line_size * 5)
    for _ in range(5):
        writer.write_one(record)
    first_inode = path.stat().st_ino
    assert path.stat().st_size == line_size * 5
    writer.write_one({"after": 1})
    backup = tmp_path / "events.json.1"
    assert backup.stat().st_ino == first_inode  # renamed, not copied: logcollector follows inodes
    assert path.stat().st_ino != first_inode
    assert read_lines(backup) == [record] * 5
    assert read_lines(path) == [{"after": 1}]
    assert mode(path) == 0o640
    # A second rotation replaces the previous backup.
    writer.write([record] * 5)
    assert read_lines(backup) == [{"after": 1}]
    assert read_lines(path) == [record] * 5
    writer.close()


def test_batch_larger_than_max_bytes_goes_whole_into_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    writer = JsonLinesWriter(path, max_bytes=100)
    writer.write_one({"first": 1})
    writer.write([{"i": i, "pad": "y" * 40} for i in range(10)])
    assert read_lines(tmp_path / "events.json.1") == [{"first": 1}]
    assert [r["i"] for r in read_lines(path)] == list(range(10))
    writer.close()


def test_file_renamed_or_removed_by_someone_else_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    writer = JsonLinesWriter(path)
    writer.write_one({"n": 1})
    path.rename(tmp_path / "logrotated")
    writer.write_one({"n": 2})
    assert read_lines(tmp_path / "logrotated") == [{"n": 1}]
    assert read_lines(path) == [{"n": 2}]
    path.unlink()
    writer.write_one({"n": 3})
    assert read_lines(path) == [{"n": 3}] and mode(path) == 0o640
    writer.close()


def test_bad_record_writes_nothing_of_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    writer = JsonLinesWriter(path, max_line_bytes=200)
    for batch in (
        [{"ok": 1}, {"bad": float("nan")}],
        [{"ok": 1}, {"bad": object()}],
        [{"ok": 1}, {"big": "z" * 300}],
    ):
        with pytest.raises(ValueError):
            writer.write(batch)
    assert not path.exists() or path.read_bytes() == b""
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write_one({"late": 1})


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    writer = JsonLinesWriter(path, max_bytes=40_000)
    threads_n, batches, per_batch = 8, 25, 4
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for b in range(batches):
                writer.write(
                    [{"t": t, "b": b, "i": i, "pad": "p" * (t * 13)} for i in range(per_batch)]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert not errors
    backup = tmp_path / "events.json.1"
    assert backup.exists()  # rotation happened while threads were writing
    current = read_lines(path)
    rotated = read_lines(backup)
    assert path.stat().st_size <= 40_000 and backup.stat().st_size <= 40_000
    # Batches stay whole and in order per thread, in each file.
    for lines in (current, rotated):
        for start in range(0, len(lines), per_batch):
            batch = lines[start : start + per_batch]
            assert [r["i"] for r in batch] == list(range(per_batch))
            assert len({(r["t"], r["b"]) for r in batch}) == 1


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        JsonLinesWriter(Path("x"), max_bytes=0)


# --- line shape ------------------------------------------------------------------------------


def _secret_payload() -> dict[str, Any]:
    return {
        "action": "publicly_leaked",
        "alert": {
            "number": 7,
            "created_at": "2024-05-03T11:00:00Z",
            "html_url": "https://github.com/octo-org/hello-world/security/secret-scanning/7",
            "url": "https://api.github.com/repos/octo-org/hello-world/secret-scanning/alerts/7",
            "locations_url": "https://api.github.com/repos/o/r/secret-scanning/alerts/7/locations",
            "secret_type": "github_personal_access_token",
            "secret_type_display_name": "GitHub Personal Access Token",
            "secret": LEAKED,
            "validity": "active",
        },
        "repository": {
            "id": 186853002,
            "full_name": "octo-org/hello-world",
            "private": True,
            "html_url": "https://github.com/octo-org/hello-world",
            "owner": {"login": "octo-org"},
            **{f"{name}_url": f"https://api.github.com/{name}" for name in ("hooks", "keys")},
        },
        "sender": {"login": "octocat", "id": 1, "type": "User", "avatar_url": "https://x/y"},
        "installation": {"id": 5, "node_id": "abc", "token": "ghs_installationtoken"},
        "hook": {"config": {"secret": "********", "url": "https://casefold.example/hook"}},
    }


def test_github_line_shape_and_no_secrets() -> None:
    payload = _secret_payload()
    alert = parse_github_event("secret_scanning_alert", DELIVERY, payload)
    line = github_line("secret_scanning_alert", DELIVERY, payload, alert, received=RECEIVED)
    assert line["casefold"] == {
        "source": "github",
        "event": "secret_scanning_alert",
        "delivery": DELIVERY,
        "received": "2024-05-06T07:08:09.123Z",
        "action": "publicly_leaked",
        "level": 15,
        "title": "GitHub secret scanning: GitHub Personal Access Token exposed [publicly_leaked]",
        "node": "octo-org/hello-world",
        "rule_id": "github_personal_access_token",
        "url": "https://github.com/octo-org/hello-world/security/secret-scanning/7",
        "sender": "octocat",
    }
    gh = line["github"]
    assert gh["repository"] == {
        "id": 186853002,
        "full_name": "octo-org/hello-world",
        "private": True,
        "html_url": "https://github.com/octo-org/hello-world",
    }
    assert gh["sender"] == {"id": 1, "login": "octocat", "type": "User"}
    assert gh["installation"] == {"id": 5}
    assert gh["hook"] == {"config": {"url": "https://casefold.example/hook"}}  # secret dropped
    assert "url" not in gh["alert"] and "locations_url" not in gh["alert"]
    assert gh["alert"]["html_url"].endswith("/secret-scanning/7")
    text = encode_line(line).decode()
    assert LEAKED not in text and "ghs_installationtoken" not in text and "********" not in text
    assert payload["alert"]["secret"] == LEAKED  # the caller's payload is untouched


def test_github_line_severity_for_rules() -> None:
    payload = {
        "action": "created",
        "alert": {
            "html_url": "https://github.com/o/r/security/dependabot/3",
            "security_advisory": {"ghsa_id": "GHSA-xxxx-yyyy-zzzz", "severity": "moderate"},
            "security_vulnerability": {"severity": "moderate"},
        },
        "repository": {"full_name": "o/r"},
    }
    alert = parse_github_event("dependabot_alert", DELIVERY, payload)
    line = github_line("dependabot_alert", DELIVERY, payload, alert, received=RECEIVED)
    assert line["casefold"]["severity"] == "medium" and line["casefold"]["level"] == 8
    assert line["casefold"]["rule_id"] == "GHSA-xxxx-yyyy-zzzz"


def test_oversized_payload_is_trimmed_then_dropped() -> None:
    payload = {
        "action": "published",
        "security_advisory": {
            "ghsa_id": "GHSA-aaaa-bbbb-cccc",
            "severity": "critical",
            "summary": "s",
            "description": "d" * 200_000,
            "references": [{"url": f"https://example.com/{i}"} for i in range(500)],
        },
    }
    alert = parse_github_event("security_advisory", DELIVERY, payload)
    line = github_line("security_advisory", DELIVERY, payload, alert, received=RECEIVED)
    encoded = encode_line(line)
    assert len(encoded) <= MAX_LINE_BYTES
    advisory = line["github"]["security_advisory"]
    assert len(advisory["description"]) == 2048 and advisory["description"].endswith("…")
    assert advisory["references"][:2] == [
        {"url": "https://example.com/0"},
        {"url": "https://example.com/1"},
    ]
    assert len(advisory["references"]) == 25
    # With a tiny limit nothing of the payload fits: the summary alone goes out, marked.
    small = github_line("security_advisory", DELIVERY, payload, alert, max_line_bytes=700)
    assert "github" not in small and small["casefold"]["truncated"] is True
    assert small["casefold"]["level"] == 15


def test_deep_payload_is_cut() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(50):
        node["n"] = {}
        node = node["n"]
    line = github_line("ping", DELIVERY, {"zen": "z", "deep": deep}, None, received=RECEIVED)
    assert "level" not in line["casefold"]
    assert len(encode_line(line)) < 1000


def test_standard_event_line() -> None:
    doc = {"type": "detection.created", "data": {"title": "T", "severity": "low", "token": "tkn"}}
    alert = parse_standard_event(doc, "msg_1", "netsensor")
    line = event_line("netsensor", "detection.created", "msg_1", doc, alert, received=RECEIVED)
    assert line["casefold"]["source"] == "netsensor" and line["casefold"]["level"] == 5
    assert line["payload"] == {
        "type": "detection.created",
        "data": {"title": "T", "severity": "low"},
    }


def test_lines_round_trip_through_the_writer(tmp_path: Path) -> None:
    payload = _secret_payload()
    alert = parse_github_event("secret_scanning_alert", DELIVERY, payload)
    line = github_line("secret_scanning_alert", DELIVERY, payload, alert, received=RECEIVED)
    path = tmp_path / "github.json"
    with JsonLinesWriter(path) as writer:
        writer.write_one(line)
    assert read_lines(path) == [line]
    assert LEAKED.encode() not in path.read_bytes()


# --- Wazuh rules -----------------------------------------------------------------------------


def _rules() -> list[ET.Element]:
    # Wazuh rule files may hold several top-level <group>s: wrap them to parse as one document.
    root = ET.fromstring(f"<root>{RULES.read_text(encoding='utf-8')}</root>")
    assert [g.get("name") for g in root.findall("group")] == ["casefold,github,"]
    return root.findall("group/rule")


def _fields(rule: ET.Element) -> dict[str, str]:
    return {f.get("name", ""): f.text or "" for f in rule.findall("field")}


def _matches(pattern: str, value: str) -> bool:
    """The subset of Wazuh's OS_Regex these rules use: ^…$ alternatives joined by |."""
    return any(re.fullmatch(alt.strip("^$"), value) for alt in pattern.split("|"))


def test_rules_well_formed_ids_unique_in_range() -> None:
    rules = _rules()
    ids = [int(r.get("id", "0")) for r in rules]
    assert len(ids) == len(set(ids)) and all(100750 <= i <= 100769 for i in ids)
    seen: set[int] = set()
    for rule in rules:
        assert rule.findtext("options") == "no_full_log"
        assert 0 <= int(rule.get("level", "-1")) <= 15
        description = rule.findtext("description") or ""
        assert "$(" in description
        for ref in re.findall(r"\$\(([^)]+)\)", description):
            assert ref.startswith(("casefold.", "github.")), ref
        for parent in rule.findall("if_sid"):
            parents = [int(p) for p in (parent.text or "").split(",")]
            # Parents defined earlier in the file, no spaces (a Wazuh if_sid parsing pitfall).
            assert parents and set(parents) <= seen and " " not in (parent.text or "")
        seen.add(int(rule.get("id", "0")))
    base = [r for r in rules if r.findtext("decoded_as") == "json"]
    assert len(base) == 1 and _fields(base[0]) == {"casefold.source": "^github$"}


def _classify(line: dict[str, Any]) -> tuple[str, int]:
    """Walk the rule tree like analysisd: from the base, first matching child, recursively."""
    rules = _rules()
    flat = {f"casefold.{k}": str(v) for k, v in line["casefold"].items()}
    children: dict[str | None, list[ET.Element]] = {}
    for rule in rules:
        if_sid = rule.findtext("if_sid")
        for parent in if_sid.split(",") if if_sid else [None]:
            children.setdefault(parent, []).append(rule)

    def match(rule: ET.Element) -> bool:
        return all(
            name in flat and _matches(pattern, flat[name])
            for name, pattern in _fields(rule).items()
        )

    current = next(r for r in children[None] if match(r))
    while True:
        nxt = next((r for r in children.get(current.get("id"), []) if match(r)), None)
        if nxt is None:
            return current.get("id", ""), int(current.get("level", "0"))
        current = nxt


@pytest.mark.parametrize(
    ("event", "payload", "expected_level"),
    [
        ("code_scanning_alert", {"action": "created", "alert": {"rule": {"id": "x"}}}, 3),
        (
            "code_scanning_alert",
            {"action": "created", "alert": {"rule": {"security_severity_level": "critical"}}},
            15,
        ),
        (
            "code_scanning_alert",
            {"action": "fixed", "alert": {"rule": {"security_severity_level": "critical"}}},
            3,
        ),
        ("secret_scanning_alert", {"action": "created", "alert": {"secret_type": "x"}}, 12),
        ("secret_scanning_alert", {"action": "publicly_leaked", "alert": {}}, 15),
        ("secret_scanning_alert", {"action": "resolved", "alert": {}}, 3),
        ("dependabot_alert", {"action": "created", "alert": {"security_advisory": {}}}, 3),
        (
            "dependabot_alert",
            {"action": "created", "alert": {"security_vulnerability": {"severity": "high"}}},
            12,
        ),
        (
            "dependabot_alert",
            {"action": "dismissed", "alert": {"security_vulnerability": {"severity": "high"}}},
            3,
        ),
        ("repository_vulnerability_alert", {"action": "create", "alert": {"severity": "low"}}, 5),
        ("repository_vulnerability_alert", {"action": "resolve", "alert": {"severity": "low"}}, 3),
        (
            "security_advisory",
            {"action": "published", "security_advisory": {"severity": "moderate"}},
            8,
        ),
        (
            "security_advisory",
            {"action": "withdrawn", "security_advisory": {"severity": "critical"}},
            3,
        ),
    ],
)
def test_rules_levels_agree_with_casefold(
    event: str, payload: dict[str, Any], expected_level: int
) -> None:
    alert = parse_github_event(event, DELIVERY, payload)
    assert alert is not None and alert.level == expected_level
    _, wazuh_level = _classify(github_line(event, DELIVERY, payload, alert, received=RECEIVED))
    assert wazuh_level == expected_level
