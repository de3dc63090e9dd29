"""`casefold outbox list|retry` on a real store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from casefold.cli import app
from casefold.config import Settings
from casefold.outbox import store
from casefold.outbox.store import Effect
from casefold.runtime import Runtime

runner = CliRunner()


def store_with_a_dead_effect(data: Path) -> int:
    rt = Runtime(Settings(data_dir=data))
    rt.open_store()
    rt.writer.start()
    try:
        now = datetime.now(UTC)

        def job(conn) -> int:
            store.enqueue(conn, [Effect("webhook", "webhook.post", "w", "k1", {"url": "x"})], now)
            [row] = store.claim(conn, now)
            store.mark_failed(conn, row.id, "answered 400: bad payload", now, retry_in=None)
            return int(row.id)

        return rt.writer.run(job)
    finally:
        rt.stop()


def test_list_shows_dead_effects_and_retry_queues_one(tmp_path: Path):
    effect_id = store_with_a_dead_effect(tmp_path / "data")
    args = ["--data-dir", str(tmp_path / "data")]
    listed = runner.invoke(app, ["outbox", "list", "--state", "dead", *args])
    assert listed.exit_code == 0, listed.output
    assert "Webhook: failed after 1 attempt(s): answered 400: bad payload" in listed.output
    retried = runner.invoke(app, ["outbox", "retry", str(effect_id), *args])
    assert retried.exit_code == 0 and "Webhook: queued" in retried.output
    after = runner.invoke(app, ["outbox", "list", "--state", "dead", *args])
    assert "no effects" in after.output


def test_errors_are_one_line_and_non_zero(tmp_path: Path):
    store_with_a_dead_effect(tmp_path / "data")
    args = ["--data-dir", str(tmp_path / "data")]
    missing = runner.invoke(app, ["outbox", "retry", "999", *args])
    assert missing.exit_code == 1 and "outbox effect 999 does not exist" in missing.output
    bad = runner.invoke(app, ["outbox", "list", "--state", "stuck", *args])
    assert bad.exit_code != 0 and "--state must be" in bad.output
