"""The writer's two lanes: client work first, background work never starved."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from casefold.config import Settings
from casefold.store.db import make_engine
from casefold.store.writer import BACKGROUND_TURN_SECONDS, Writer


def test_a_flood_of_client_writes_still_lets_background_work_through(tmp_path: Path):
    engine = make_engine(Settings(data_dir=tmp_path))
    writer = Writer(engine)
    writer.start()
    stop = threading.Event()

    def flood() -> None:
        # Keeps the foreground lane full: each job is queued before the last one finished.
        while not stop.is_set():
            futures = [writer.submit(lambda c: time.sleep(0.002)) for _ in range(4)]
            for f in futures:
                f.result()

    senders = [threading.Thread(target=flood) for _ in range(3)]
    try:
        for t in senders:
            t.start()
        time.sleep(0.2)
        started = time.monotonic()
        done = [
            writer.submit(lambda c: c.execute(text("SELECT 1")), background=True) for _ in range(3)
        ]
        for f in done:
            f.result(timeout=10)
        waited = time.monotonic() - started
        # Three background jobs, one turn each: well under a second, not "after the flood".
        assert waited < 3 * BACKGROUND_TURN_SECONDS + 1.0
        assert time.monotonic() - writer.last_foreground < 0.5  # the flood was still going
    finally:
        stop.set()
        for t in senders:
            t.join(10)
        writer.stop()
        engine.dispose()


class _Probe:
    """A writer job that reports the connection's fsync setting during its transaction."""

    def __init__(self, durable: bool) -> None:
        self.durable = durable

    def __call__(self, conn) -> int:
        return conn.exec_driver_sql("PRAGMA synchronous").scalar()


def test_only_jobs_marked_not_durable_skip_the_fsync(tmp_path: Path):
    # The tailer's batches skip SQLite's fsync (alerts.json is their durable copy); everything
    # else, an acknowledgement above all, keeps synchronous=FULL (2), before and after them.
    writer = Writer(make_engine(Settings(data_dir=tmp_path)))
    writer.start()
    try:
        seen = [
            writer.run(_Probe(durable), background=background)
            for durable, background in [(True, False), (False, True), (True, True), (True, False)]
        ]
        assert seen == [2, 1, 2, 2]
        # Queued behind a job that holds the writer, these two share the next transaction.
        release = threading.Event()
        holding = writer.submit(lambda c: release.wait(10))
        mixed = [writer.submit(_Probe(False)), writer.submit(_Probe(True))]
        release.set()
        holding.result(timeout=10)
        assert [f.result(timeout=10) for f in mixed] == [2, 2]  # one durable job: it fsyncs
    finally:
        writer.stop()


def test_with_synchronous_normal_configured_nothing_changes(tmp_path: Path):
    writer = Writer(make_engine(Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")))
    writer.start()
    try:
        assert [writer.run(_Probe(d)) for d in (False, True)] == [1, 1]
    finally:
        writer.stop()
