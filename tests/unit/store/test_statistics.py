"""SQLite's planner gets table statistics when the store opens, so filtered queues use indexes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from casefold.config import Settings
from casefold.runtime import Runtime
from casefold.store.db import refresh_statistics


def test_opening_a_sqlite_store_analyses_it(tmp_path: Path):
    runtime = Runtime(Settings(data_dir=tmp_path / "data"))
    try:
        runtime.open_store()
        with runtime.engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            ).scalar_one()
        assert found == 1
        refresh_statistics(runtime.engine)  # again: only what changed, and no error
    finally:
        runtime.stop()
