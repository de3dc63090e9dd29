"""`casefold replay FILE… --dry-run`: alerts.json (plain and gzipped) folded and run in memory."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from support.alerts import SAMPLES, sample, sshd_alert
from typer.testing import CliRunner

from casefold.cli import app

runner = CliRunner()
ATTACKER = "203.0.113.7"  # sshd_alert's default address
KEY = "replay-test-cti-key"


def ndjson_lines() -> list[str]:
    """The real samples (but the active-response envelope, which is no alert), 30 failed sshd
    logins from one address a minute apart, and one broken line (line 6)."""
    docs = [
        sample(p.name)
        for p in sorted(SAMPLES.glob("*.json"))
        if not p.name.startswith("active_response")
    ]
    docs += [sshd_alert(i, minutes=i) for i in range(30)]
    lines = [json.dumps(d) for d in docs]
    lines.insert(5, '{"timestamp": "2026-11-20T10:00:00.000+0000", "rule": {"level": ')
    return lines


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    text = "\n".join(ndjson_lines()) + "\n"
    plain = tmp_path / "alerts.json"
    plain.write_text(text)
    packed = tmp_path / "alerts-2026-11-20.json.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return plain, packed


def replay(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["replay", *args], env=env)


def test_replay_folds_in_memory_and_deduplicates(tmp_path: Path, files: tuple[Path, Path]):
    plain, packed = files
    data_dir = tmp_path / "data"
    r = replay(str(plain), str(packed), "--dry-run", "--json", "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    samples = len([p for p in SAMPLES.glob("*.json") if not p.name.startswith("active_")])
    per_file = samples + 30
    assert report["files"] == [str(plain), str(packed)]
    assert report["alerts"] == 2 * per_file
    # the .gz repeats every alert: same (node, id) as intake's dedup key, so counted once
    assert report["duplicates"] == per_file
    assert report["unique_alerts"] == per_file
    assert "as intake does" in report["dedup"]
    assert report["bad_line_count"] == 2
    assert [b["position"] for b in report["bad_lines"]] == [f"{plain}:6", f"{packed}:6"]
    assert all("invalid JSON" in b["error"] for b in report["bad_lines"])

    brute = [c for c in report["cases"] if c["key"] == ATTACKER]
    assert len(brute) == 1
    case = brute[0]
    assert case["rule"] == "auth-bruteforce" and case["alerts"] == 30
    assert case["summary"] == f"Authentication attack from {ATTACKER}"
    assert case["first_seen"] == "2026-11-20T10:00:00Z"
    assert case["last_seen"] == "2026-11-20T10:29:00Z"
    assert case["last_join"] == (
        f"joined by rule auth-bruteforce, key {ATTACKER}, 30th alert in 29 min"
    )
    assert case["opened_at"].startswith(f"{plain}:")
    # every sample opens its own case; the 29 later sshd alerts join the first one's
    assert len(report["cases"]) == samples + 1
    assert report["merges"] == 29
    assert report["joins"][0]["reason"].endswith("2nd alert in 1 min")
    assert report["playbook_runs"] == {}  # no playbook enabled
    assert not data_dir.exists()  # no store was opened, no database file written


def test_replay_runs_the_enabled_playbooks(tmp_path: Path, files: tuple[Path, Path]):
    plain, _ = files
    env = {
        "CASEFOLD_BUNDLED_PLAYBOOKS": "wazuh-crowdsec-ticketing",
        "CASEFOLD_SECRET__CROWDSEC_CTI__CTI_API_KEY": KEY,
    }
    r = replay(str(plain), "--dry-run", "--json", "--data-dir", str(tmp_path / "d"), env=env)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    # one CrowdSec sample: one run; its event carries no metadata, so the comment step fails
    runs = report["playbook_runs"]["wazuh-crowdsec-ticketing"]
    assert sum(runs.values()) == 1
    steps = report["steps"]["wazuh-crowdsec-ticketing"]
    assert sum(steps.values()) == 10
    # the sample's attacker is 10.10.10.10: a private address is never sent to CrowdSec; the
    # lookup is skipped and the run goes on
    assert report["http"] == {}
    assert steps.get("skipped", 0) >= 1
    assert report["effects"]["update: priority, severity"] == 1
    assert KEY not in r.output


def test_replay_text_summary(tmp_path: Path, files: tuple[Path, Path]):
    plain, packed = files
    r = replay(str(plain), str(packed), "--dry-run", "--data-dir", str(tmp_path / "d"))
    assert r.exit_code == 0, r.output
    assert "duplicates skipped" in r.stdout
    assert f"bad line {plain}:6" in r.stdout
    assert "Cases that would open" in r.stdout
    assert ATTACKER in r.stdout


def test_replay_needs_dry_run(tmp_path: Path, files: tuple[Path, Path]):
    plain, _ = files
    r = replay(str(plain), "--data-dir", str(tmp_path / "d"))
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "--dry-run" in r.stderr
    assert not (tmp_path / "d").exists()


def test_replay_of_a_missing_file(tmp_path: Path):
    r = replay(str(tmp_path / "nope.json"), "--dry-run")
    assert r.exit_code == 2 and "no such file" in r.stderr
