"""`casefold report`: counts over alerts.json files (plain and gzipped) and over the store."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.alerts import SAMPLES, sample, sshd_alert
from typer.testing import CliRunner

from casefold.cli import app
from casefold.config import Settings
from casefold.errors import InvalidInputError
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import receive
from casefold.report import AlertReport, band_of, report_from_files, report_from_store
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert

AR_ENVELOPE = "active_response_stdin_add_firewall_drop_31168.json"
runner = CliRunner()


def _docs() -> list[dict[str, Any]]:
    """Every real alert sample once, plus three generated sshd alerts (one raised to level 13)."""
    docs = [sample(p.name) for p in sorted(SAMPLES.glob("*.json")) if p.name != AR_ENVELOPE]
    docs += [sshd_alert(0), sshd_alert(1, minutes=1), sshd_alert(2, minutes=2, level=13)]
    return docs


def _line(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":")) + "\n"  # analysisd's compact NDJSON


@pytest.fixture
def alert_files(tmp_path: Path) -> tuple[Path, Path]:
    """alerts.json: the first 8 alerts with a broken line at 3 and an AR message at 6, and a blank
    line; ossec-alerts-01.json.gz: the other 8."""
    docs = _docs()
    lines = [_line(d) for d in docs[:8]]
    lines.insert(2, '{"timestamp": "2024-01-01T00:00:00.000+0000", "rule": {"le\n')  # cut off
    lines.insert(5, _line(sample(AR_ENVELOPE)))
    lines.insert(7, "\n")
    plain = tmp_path / "alerts.json"
    plain.write_text("".join(lines))
    packed = tmp_path / "ossec-alerts-01.json.gz"
    with gzip.open(packed, "wt") as f:
        f.writelines(_line(d) for d in docs[8:])
    return plain, packed


EXPECTED_LEVELS = {3: 5, 5: 1, 10: 5, 12: 2, 13: 1, 15: 2}


def _check_counts(d: dict[str, Any]) -> None:
    assert d["total"] == 16
    assert d["by_level"] == {str(lv): EXPECTED_LEVELS.get(lv, 0) for lv in range(17)}
    assert d["by_band"] == {"low": 6, "medium": 5, "high": 3, "critical": 2}
    assert d["by_source"] == {"wazuh": 16}
    rules = d["top_rules"]
    assert rules[0] == {
        "rule_id": "5712",
        "description": "sshd: brute force trying to get access to the system. Non existent user.",
        "count": 4,
        "max_level": 13,
    }
    # Ties (one alert each) in rule id order, so the report is the same on every run.
    assert [r["rule_id"] for r in rules[1:4]] == ["100003", "100500", "23505"]
    assert len(rules) == 10
    agents = [(a["name"], a["id"], a["count"]) for a in d["top_agents"]]
    assert agents[:3] == [
        ("localhost.localdomain", "000", 5),
        ("Ubuntu", "010", 3),
        ("DESKTOP-9LO9B7Q", "007", 2),
    ]
    techniques = {t["id"]: (t["name"], t["count"]) for t in d["top_techniques"]}
    assert d["top_techniques"][0] == {"id": "T1110", "name": "Brute Force", "count": 4}
    assert techniques["T1021.001"] == ("Remote Desktop Protocol", 1)
    assert techniques["T1190"] == ("Exploit Public-Facing Application", 1)
    assert len(techniques) == 8
    assert d["first"] == "2018-07-30T13:54:46.476000Z"
    assert d["last"] == "2026-11-20T10:02:00Z"


def test_files_plain_and_gzip(alert_files: tuple[Path, Path]):
    plain, packed = alert_files
    seen: list[int] = []
    report = report_from_files([plain, packed], progress=seen.append)
    d = report.to_dict(top=10)
    _check_counts(d)
    assert d["duplicates"] == 0
    assert d["bad_line_count"] == 2
    assert [(b["file"], b["line"]) for b in d["bad_lines"]] == [(str(plain), 3), (str(plain), 6)]
    assert d["bad_lines"][0]["reason"].startswith("invalid JSON")
    assert "active-response" in d["bad_lines"][1]["reason"]
    # Progress counts on-disk bytes: the compressed size for the .gz.
    assert sum(seen) == plain.stat().st_size + packed.stat().st_size


def test_repeated_alerts_count_once(alert_files: tuple[Path, Path]):
    plain, _ = alert_files
    d = report_from_files([plain, plain]).to_dict()
    assert d["total"] == 8 and d["duplicates"] == 8 and d["bad_line_count"] == 4


def test_time_window_and_missing_file(alert_files: tuple[Path, Path], tmp_path: Path):
    plain, packed = alert_files
    since = datetime(2026, 1, 1, tzinfo=UTC)
    d = report_from_files([plain, packed], since=since).to_dict()
    assert d["total"] == 3 and d["outside_window"] == 13
    with pytest.raises(InvalidInputError, match="no such file: .*nope.json"):
        report_from_files([plain, tmp_path / "nope.json"])


def test_truncated_gzip_is_one_bad_line(tmp_path: Path):
    packed = tmp_path / "cut.json.gz"
    data = gzip.compress("".join(_line(sshd_alert(i)) for i in range(50)).encode())
    packed.write_bytes(data[: len(data) // 2])
    d = report_from_files([packed]).to_dict()
    assert d["bad_line_count"] == 1 and "cannot read further" in d["bad_lines"][0]["reason"]


def test_accumulator_basics():
    report = AlertReport()
    alert = parse_wazuh_alert(sshd_alert(0))
    assert report.add(alert) is True and report.add(alert) is False
    for n in range(25):
        report.add_bad(n + 1, "nope")
    d = report.to_dict(top=1)
    assert d["total"] == 1 and d["duplicates"] == 1
    assert d["bad_line_count"] == 25 and len(d["bad_lines"]) == 20
    assert [band_of(lv) for lv in (0, 6, 7, 11, 12, 14, 15, 16)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]


@pytest.fixture
def stored(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "d")
    rt = Runtime(settings)
    rt.start(folding=False)
    docs = _docs()
    result = receive(
        Parsed([Item(i, d) for i, d in enumerate(docs)], single=False), parse_wazuh_alert, rt.writer
    )
    assert result.accepted == len(docs)
    rt.stop()
    return settings


def test_store_matches_files(stored: Settings, alert_files: tuple[Path, Path]):
    rt = Runtime(stored)
    rt.open_store()
    try:
        with rt.engine.connect() as conn:
            from_store = report_from_store(conn).to_dict()
            recent = report_from_store(conn, since=datetime(2026, 1, 1, tzinfo=UTC)).to_dict()
            old = report_from_store(conn, until=datetime(2019, 1, 1, tzinfo=UTC)).to_dict()
    finally:
        rt.stop()
    _check_counts(from_store)
    from_files = report_from_files(alert_files).to_dict()
    skip = {"sources", "bad_line_count", "bad_lines"}
    assert {k: v for k, v in from_store.items() if k not in skip} == {
        k: v for k, v in from_files.items() if k not in skip
    }
    assert from_store["sources"] == ["store"] and from_store["bad_line_count"] == 0
    assert recent["total"] == 3 and recent["top_rules"][0]["count"] == 3
    assert old["total"] == 1 and old["top_rules"][0]["rule_id"] == "24010"


def test_cli_table_json_and_errors(alert_files: tuple[Path, Path], tmp_path: Path):
    plain, packed = alert_files
    table = runner.invoke(app, ["report", str(plain), str(packed)])
    assert table.exit_code == 0, table.output
    for heading in ("By band", "By level", "Top rules", "Top agents", "Top MITRE ATT&CK"):
        assert heading in table.output
    assert "Alerts in 2 file(s): 16" in table.output and "2 bad lines" in table.output
    assert "Brute Force" in table.output and "localhost.localdomain" in table.output

    as_json = runner.invoke(app, ["report", str(plain), str(packed), "--json", "--top", "2"])
    assert as_json.exit_code == 0
    d = json.loads(as_json.output)
    assert d["total"] == 16 and len(d["top_rules"]) == 2 and d["by_band"]["critical"] == 2

    missing = runner.invoke(app, ["report", str(tmp_path / "nope.json")])
    assert missing.exit_code != 0
    assert missing.output.strip().count("\n") == 0 and "no such file" in missing.output
    bad_since = runner.invoke(app, ["report", str(plain), "--since", "yesterday"])
    assert bad_since.exit_code == 2 and bad_since.output.strip().count("\n") == 0


def test_cli_reads_the_store(stored: Settings):
    result = runner.invoke(
        app, ["report", "--json", "--since", "2026-01-01", "--data-dir", str(stored.data_dir)]
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["sources"] == ["store"] and d["total"] == 3 and d["by_level"]["13"] == 1
