"""SQLite's WAL starts over under a steady stream of commits instead of growing without end."""

from __future__ import annotations

import sqlite3
import threading
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


def _insert(conn) -> None:
    conn.exec_driver_sql("INSERT INTO t (body) VALUES (?)", (ROW,))


def _wal_frames(db: Path) -> int:
    """Frames in the WAL, as a PASSIVE checkpoint from another connection reports them."""
    with sqlite3.connect(db) as other:
        return other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


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
        busy, frames, copied = writer.checkpoint_wal().result(timeout=10)
        assert busy == 0 and copied == frames  # every frame is in the database now
        writer.run(_insert)
        assert _wal_frames(db) < 10  # the WAL started over with this transaction
        with sqlite3.connect(db) as other:
            assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 404
    finally:
        writer.stop()


def test_the_checkpointer_keeps_the_wal_small_while_commits_never_stop(tmp_path: Path):
    engine, writer, db = _store(tmp_path)
    checkpointer = Checkpointer(
        engine,
        db,
        writer=writer,
        interval=0.05,
        min_bytes=64 * 1024,
        restart_frames=50,
        limit_frames=400,  # clients never pause here: the size limit is what lets it finish
    )
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
            wal = Path(str(db) + "-wal")
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
            stop.wait(0.01)
    finally:
        stop.set()
        sender.join(30)
        checkpointer.stop()
        writer.stop()
    # 3,000 commits wrote over 12 MB through the WAL; it was rewound, not appended to, all along.
    assert largest < 4 * 1024 * 1024
