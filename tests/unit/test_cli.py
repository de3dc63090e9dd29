"""The command line: tokens, cases, and one-line errors with a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.alerts import sshd_alert
from typer.testing import CliRunner

from casefold.cli import app
from casefold.config import Settings
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import receive
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_token_create_list_revoke(tmp_path: Path):
    d = str(tmp_path / "d")
    r = run("token", "create", "--name", "wazuh-manager", "--role", "ingest", "--data-dir", d)
    assert r.exit_code == 0, r.output
    token = r.output.strip()
    assert token.startswith("cf_") and len(token) > 40
    listed = run("token", "list", "--data-dir", d)
    assert "wazuh-manager" in listed.output and "ingest" in listed.output
    assert token not in listed.output
    again = run("token", "create", "--name", "wazuh-manager", "--role", "ingest", "--data-dir", d)
    assert again.exit_code != 0 and "already exists" in again.output
    assert run("token", "revoke", "wazuh-manager", "--data-dir", d).exit_code == 0
    gone = run("token", "revoke", "wazuh-manager", "--data-dir", d)
    assert gone.exit_code != 0 and "no active token" in gone.output


def test_bad_role_is_one_line_and_nonzero(tmp_path: Path):
    r = run("token", "create", "--name", "x", "--role", "root", "--data-dir", str(tmp_path))
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "unknown role 'root'" in r.output


def test_cases_list_and_show(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "d")
    rt = Runtime(settings)
    rt.start(folding=False)
    docs = [sshd_alert(i, minutes=i) for i in range(3)]
    receive(
        Parsed([Item(i, d) for i, d in enumerate(docs)], single=False), parse_wazuh_alert, rt.writer
    )
    rt.folding.drain()
    rt.stop()
    listed = run("cases", "list", "--data-dir", str(settings.data_dir))
    assert listed.exit_code == 0 and "CASE-1" in listed.output
    shown = run("cases", "show", "CASE-1", "--data-dir", str(settings.data_dir))
    assert shown.exit_code == 0
    assert "Authentication attack from 203.0.113.7" in shown.output
    assert "3rd alert in 2 min" in shown.output
    as_json = run("cases", "show", "CASE-1", "--json", "--data-dir", str(settings.data_dir))
    assert '"alert_count": 3' in as_json.output
    missing = run("cases", "show", "CASE-9", "--data-dir", str(settings.data_dir))
    assert missing.exit_code == 1 and "CASE-9 does not exist" in missing.output


def test_cases_show_prints_alert_text_as_text_not_markup(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "d")
    rt = Runtime(settings)
    rt.start(folding=False)
    alert = sshd_alert(0)
    alert["data"]["srcuser"] = "[/bold]admin[red]"  # hostile: Rich would refuse or restyle it
    receive(Parsed([Item(0, alert)], single=False), parse_wazuh_alert, rt.writer)
    rt.folding.drain()
    rt.stop()
    shown = run("cases", "show", "CASE-1", "--data-dir", str(settings.data_dir))
    assert shown.exit_code == 0, shown.output
    assert "[/bold]admin[red]" in shown.output


def test_wrong_setting_stops_with_one_line(tmp_path: Path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("port: not-a-port\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "casefold",
            "serve",
            "--config",
            str(cfg),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("casefold: invalid setting port")


def test_unreachable_database_is_one_line(tmp_path: Path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "casefold",
            "cases",
            "list",
            "--database-url",
            "postgresql://nobody@127.0.0.1:1/none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("casefold: invalid setting database_url: cannot open")
    assert len(proc.stderr.strip().splitlines()) == 1
