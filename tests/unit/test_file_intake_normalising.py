"""File intake stores alerts with their header only; folding (or the first reader) normalises the
rest, and the result is exactly what HTTP intake stores for the same alert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from casefold.cases.queries import get_alert, get_case
from casefold.config import Settings
from casefold.intake.files import ingest_files
from casefold.report import report_from_store
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.store.tables import alerts

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "wazuh"
# Real alerts with observables of every family the folding rules and the case page show.
NAMES = [
    "sshd_bruteforce_nonexistent_user_5712.json",
    "syscheck_file_added_554_sha256.json",
    "sysmon_event1_process_create_hashes_100500.json",
]


@pytest.fixture
def runtime(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "data", database_url=database_url))
    rt.start(folding=False)  # the writer alone: nothing folds until the test says so
    yield rt
    rt.stop()


def _expected(raw: dict) -> dict:
    return orjson.loads(orjson.dumps(parse_wazuh_alert(raw), option=orjson.OPT_UTC_Z))


def _stored_views(rt: Runtime) -> dict[str, object]:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(alerts.c.source_id, alerts.c.normalized)).all())


def test_file_intake_leaves_the_view_to_folding_which_completes_it(
    runtime: Runtime, tmp_path: Path
):
    raws = [json.loads((SAMPLES / name).read_text()) for name in NAMES]
    path = tmp_path / "alerts.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in raws))
    report = ingest_files([path], runtime.writer)
    assert report.stored == 3
    assert set(_stored_views(runtime).values()) == {None}  # header only so far

    with runtime.engine.connect() as conn:
        ids = dict(conn.execute(select(alerts.c.source_id, alerts.c.id)).all())
        # A reader before folding sees the complete view, computed from the raw alert.
        for raw in raws:
            shown = get_alert(conn, ids[raw["id"]])
            assert shown["normalized"] == _expected(raw)
            assert shown["rule_id"] == raw["rule"]["id"]  # the indexed columns are all there
        # So does the report, which reads groups and techniques.
        report_groups = report_from_store(conn).to_dict()
    assert "sshd" in json.dumps(report_groups)

    assert runtime.folding.drain() == 3
    views = _stored_views(runtime)
    for raw in raws:
        assert views[raw["id"]] == _expected(raw)  # stored by folding, as intake stores it
    with runtime.engine.connect() as conn:
        case_id = conn.execute(
            select(alerts.c.case_id).where(alerts.c.source_id == raws[2]["id"])
        ).scalar_one()
        observables = {(o["type"], o["value"]) for o in get_case(conn, case_id)["observables"]}
    sysmon = {(o.type, o.value) for o in parse_wazuh_alert(raws[2]).observables}
    assert any(t == "hash" for t, _ in sysmon)
    assert sysmon <= observables  # its case holds the observables folding extracted
