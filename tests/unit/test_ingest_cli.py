"""`casefold ingest`: alerts.json files (plain and gzip) into the store, with intake's duplicate
rules, bad lines reported by file and line, and the alerts folded into cases."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from support.alerts import sshd_alert
from typer.testing import CliRunner

from casefold.cli import app
from casefold.config import Settings
from casefold.runtime import Runtime

runner = CliRunner()


def _write(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_ingest_stores_folds_and_reports_bad_lines(tmp_path: Path):
    d = str(tmp_path / "data")
    plain = _write(
        tmp_path / "alerts.json",
        [json.dumps(sshd_alert(i, minutes=i)) for i in range(3)] + ["{not json", '{"x": 1}'],
    )
    # Yesterday's rotated file, compressed; it repeats one alert of today's file.
    rotated = _write(
        tmp_path / "ossec-alerts-21.json.gz",
        [json.dumps(sshd_alert(2, minutes=2)), json.dumps(sshd_alert(9, srcip="198.51.100.4"))],
    )
    r = runner.invoke(app, ["ingest", str(plain), str(rotated), "--data-dir", d])
    assert r.exit_code == 3, r.output  # some lines were not alerts
    assert "2 file(s), 7 lines: 4 alerts stored, 1 duplicates, 2 rejected" in r.output
    assert f"{plain}:4: invalid JSON at column 2" in r.output
    assert f"{plain}:5:" in r.output and "rule" in r.output
    rt = Runtime(Settings(data_dir=Path(d)))
    rt.open_store()
    try:
        from casefold.cases.queries import list_cases

        with rt.engine.connect() as conn:
            found = list_cases(conn, sort="created_at").items
    finally:
        rt.stop()
    counts = {c["summary"].rsplit(" ", 1)[-1]: c["alert_count"] for c in found}
    assert counts == {"203.0.113.7": 3, "198.51.100.4": 1}  # folded: one case per attacker
    # Again: everything is a duplicate, nothing new is stored.
    again = runner.invoke(app, ["ingest", str(rotated), "--data-dir", d])
    assert again.exit_code == 0, again.output
    assert "0 alerts stored, 2 duplicates, 0 rejected" in again.output


def test_a_missing_file_stops_before_anything_is_read(tmp_path: Path):
    good = _write(tmp_path / "alerts.json", [json.dumps(sshd_alert(0))])
    r = runner.invoke(
        app, ["ingest", str(good), str(tmp_path / "nope.json"), "--data-dir", str(tmp_path / "d")]
    )
    assert r.exit_code == 2
    assert r.output.strip() == f"casefold: no such file: {tmp_path / 'nope.json'}"


def test_a_truncated_gzip_keeps_what_came_before(tmp_path: Path):
    lines = [json.dumps(sshd_alert(i, srcip=f"203.0.113.{i}")) + "\n" for i in range(50)]
    whole = gzip.compress("".join(lines).encode())
    broken = tmp_path / "ossec-alerts-20.json.gz"
    broken.write_bytes(whole[: len(whole) * 2 // 3])
    r = runner.invoke(app, ["ingest", str(broken), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 3 and "cannot read further" in r.output
    stored = int(r.output.split("lines: ")[1].split(" alerts stored")[0])
    assert 0 < stored < 50
