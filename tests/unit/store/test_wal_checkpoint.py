"""SQLite's WAL starts over under a steady stream of commits instead of growing without end."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from casefold.config import Settings
from casefold.store.db import Checkpointer, make_engine
from casefold.store.writer import Writer

ROW = "x" * 3000  # about one page per transaction


def _store(tmp_path: Path) -> tuple[Engine, Writer, Path]:
    engine = make_engine(Settings(data_dir=tmp_path))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
    writer = Writer(engine)
    writer.start()
    return engine, writer, tmp_path / "casefold.db"


def _checkpointer(engine: Engine, writer: Writer, db: Path, **limits: int) -> Checkpointer:
    """A Checkpointer that looks every 50 ms and acts on a WAL of a few dozen frames."""
    return Checkpointer(
        engine, db, writer=writer, interval=0.05, min_bytes=64 * 1024, restart_frames=50, **limits
    )


def _insert(conn) -> None:
    conn.exec_driver_sql("INSERT INTO t (body) VALUES (?)", (ROW,))


def _wal_frames(db: Path) -> int:
    """Frames in the WAL, as a PASSIVE checkpoint from another connection reports them."""
    with sqlite3.connect(db) as other:
        return other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def _wal_bytes(db: Path) -> int:
    wal = Path(str(db) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as other:
        return other.execute("SELECT count(*) FROM t").fetchone()[0]


def _finish_then_rewind(writer: Writer) -> None:
    """The writer copies every frame left, and its next commit starts the WAL over."""
    busy, frames, copied = writer.checkpoint_wal().result(timeout=10)
    assert busy == 0 and copied == frames  # every frame is in the database now
    writer.run(_insert)


def _copy_all_but_the_last_commit(writer: Writer, db: Path) -> int:
    """A background pass that misses the last commit, as under load one always lands while the
    pass runs (here a reader's snapshot holds it back); returns the frames in the WAL."""
    with sqlite3.connect(db, isolation_level=None) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        writer.run(_insert)
        with sqlite3.connect(db) as other:
            _busy, frames, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        reader.execute("COMMIT")
    assert 0 < copied < frames
    return frames


def test_the_writer_copies_the_last_frames_and_the_next_commit_rewinds_the_wal(tmp_path: Path):
    _engine, writer, db = _store(tmp_path)
    try:
        for _ in range(200):
            writer.run(_insert)
        frames = _copy_all_but_the_last_commit(writer, db)
        writer.run(_insert)
        # With a frame left uncopied nothing rewinds the WAL: the next commit is appended.
        assert _wal_frames(db) > frames > 200

        for _ in range(200):
            writer.run(_insert)
        _copy_all_but_the_last_commit(writer, db)
        _finish_then_rewind(writer)
        assert _wal_frames(db) < 10  # the WAL started over with this transaction
        assert _rows(db) == 404
    finally:
        writer.stop()


def test_the_checkpointer_keeps_the_wal_small_while_commits_never_stop(tmp_path: Path):
    engine, writer, db = _store(tmp_path)
    # Clients never pause here: the size limit is what lets it finish.
    checkpointer = _checkpointer(engine, writer, db, limit_frames=400)
    stop = threading.Event()
    commits = 0

    def stream() -> None:
        nonlocal commits
        while not stop.is_set():
            writer.run(_insert)
            commits += 1

    sender = threading.Thread(target=stream)
    checkpointer.start()
    sender.start()
    try:
        largest = 0
        while commits < 3000:
            largest = max(largest, _wal_bytes(db))
            stop.wait(0.01)
    finally:
        stop.set()
        sender.join(30)
        checkpointer.stop()
        writer.stop()
    # 3,000 commits wrote over 12 MB through the WAL; it was rewound, not appended to, all along.
    assert largest < 4 * 1024 * 1024


def test_the_commit_that_rewinds_the_wal_writes_over_the_file_instead_of_cutting_it(
    tmp_path: Path, monkeypatch
):
    # Cutting a big WAL back to journal_size_limit is an ftruncate inside that commit (70-130 ms
    # for 200 MB here), paid by whichever client's alert it carried.
    monkeypatch.setattr("casefold.store.db.WAL_SIZE_LIMIT", 64 * 1024)
    _engine, writer, db = _store(tmp_path)
    try:
        for _ in range(300):
            writer.run(_insert)
        grown = _wal_bytes(db)
        assert grown > 1024 * 1024
        _finish_then_rewind(writer)
        assert _wal_frames(db) < 10  # rewound...
        assert _wal_bytes(db) == grown  # ...and written over, not cut back to 64 KiB

        busy, _frames, _copied = writer.checkpoint_wal(truncate=True).result(timeout=10)
        assert busy == 0 and _wal_bytes(db) == 0
        writer.run(_insert)
        assert _rows(db) == 302
    finally:
        writer.stop()


def test_truncating_gives_up_at_once_while_a_reader_is_on_the_wal(tmp_path: Path):
    _engine, writer, db = _store(tmp_path)
    try:
        for _ in range(50):
            writer.run(_insert)
        with sqlite3.connect(db, isolation_level=None) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()
            writer.run(_insert)
            # The connection's 30 s busy timeout must not apply: the writer would stall on it.
            busy, _frames, _copied = writer.checkpoint_wal(truncate=True).result(timeout=5)
            assert busy == 1 and _wal_bytes(db) > 0
            writer.run(_insert, timeout=5)  # the writer goes on
            reader.execute("COMMIT")
        busy, _frames, _copied = writer.checkpoint_wal(truncate=True).result(timeout=5)
        assert busy == 0 and _wal_bytes(db) == 0
    finally:
        writer.stop()


def test_the_checkpointer_cuts_a_wal_a_flood_grew_once_clients_are_quiet(tmp_path: Path):
    engine, writer, db = _store(tmp_path)
    checkpointer = _checkpointer(
        engine, writer, db, limit_frames=100_000, truncate_bytes=256 * 1024
    )
    try:
        for _ in range(300):  # a burst: about 1.2 MB of WAL, rewound by the writer
            writer.run(_insert)
        _finish_then_rewind(writer)
        assert _wal_frames(db) < 10 and _wal_bytes(db) > 1024 * 1024
        checkpointer.start()
        deadline = time.monotonic() + 10
        while _wal_bytes(db) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _wal_bytes(db) == 0
    finally:
        checkpointer.stop()
        writer.stop()
