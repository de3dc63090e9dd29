"""`casefold wazuh wodle`: health checks as JSON lines, and the rules that read them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from casefold.cli import app
from casefold.config import Settings
from casefold.outbox import store
from casefold.outbox.store import Effect
from casefold.runtime import Runtime

RULES = Path(__file__).resolve().parents[2] / "src/casefold/wazuh_side/rules"
runner = CliRunner()


def checks(output: str) -> dict[str, dict]:
    return {c["casefold"]["check"]: c["casefold"] for c in map(json.loads, output.splitlines())}


def test_a_healthy_pipeline_is_all_ok(tmp_path: Path):
    spool = tmp_path / "spool"
    spool.mkdir()
    r = runner.invoke(
        app,
        ["wazuh", "wodle", "--spool-dir", str(spool), "--data-dir", str(tmp_path / "d")],
        env={"CASEFOLD_SECRET__CROWDSEC_CTI__CTI_API_KEY": "k"},
    )
    assert r.exit_code == 0, r.output
    found = checks(r.output)
    assert set(found) == {"spool", "outbox", "folding", "enrichment"}, r.output
    assert {c["status"] for c in found.values()} == {"ok"}
    assert found["spool"]["depth"] == 0 and found["outbox"]["dead"] == 0
    assert found["enrichment"]["provider"] == "crowdsec" and found["enrichment"]["left"] == 50


def test_a_spool_backlog_and_a_dead_effect_are_reported(tmp_path: Path):
    spool = tmp_path / "spool"
    spool.mkdir()
    for n in range(150):
        (spool / f"{n:020d}-1-abcd.json").write_text("{}")
    rt = Runtime(Settings(data_dir=tmp_path / "d"))
    rt.open_store()
    rt.writer.start()
    now = datetime.now(UTC)

    def job(conn) -> None:
        store.enqueue(conn, [Effect("jira", "jira.create", "c", "k", {})], now)
        [row] = store.claim(conn, now)
        store.mark_failed(
            conn, row.id, "answered 400: project SEC does not exist", now, retry_in=None
        )

    rt.writer.run(job)
    rt.stop()
    r = runner.invoke(
        app, ["wazuh", "wodle", "--spool-dir", str(spool), "--data-dir", str(tmp_path / "d")]
    )
    found = checks(r.output)
    assert found["spool"] == {**found["spool"], "status": "warning", "depth": 150}
    assert found["outbox"]["status"] == "critical" and found["outbox"]["dead"] == 1
    assert "project SEC does not exist" in found["outbox"]["last_error"]


def test_the_rules_file_is_well_formed_with_unique_ids():
    text = (RULES / "casefold_wodle_rules.xml").read_text()
    root = ET.fromstring(f"<root>{text}</root>")
    ids = [int(r.get("id")) for r in root.iter("rule")]
    assert len(ids) == len(set(ids)) and all(100780 <= i <= 100789 for i in ids)
