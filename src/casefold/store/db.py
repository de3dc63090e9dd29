"""The engine, its dialect quirks, and schema migration at start.

SQLite runs in WAL mode so readers never block the writer; every write goes through
`casefold.store.writer.Writer`, one thread, as Datasette does. PostgreSQL is driven by psycopg 3.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Table, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite import Insert
from sqlalchemy.engine import Connection

from casefold.config import Settings
from casefold.errors import ConfigError
from casefold.store.writer import Writer

log = logging.getLogger("casefold.store")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WAL_SIZE_LIMIT = 64 * 1024 * 1024
CATCH_UP_PASSES = 4  # background checkpoints in a row before the writer is asked to finish
QUIET_SECONDS = 0.5  # no client write for this long: the writer may finish a checkpoint
FINISH_INTERVAL_SECONDS = 10.0
MIGRATION_LOCK = 0x6361_7365_666F_6C64  # "casefold": the advisory lock key of migrations


def _json_dumps(value: Any) -> str:
    # default=str: a datetime or other non-JSON value in a step's input or result is stored as
    # text rather than failing the whole transaction.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column NUMERIC affinity, so a stored bare number (the JSON text "10")
    # comes back as the number itself: it is already the decoded value.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def sqlite_time(value: datetime) -> str:
    """A datetime as SQLAlchemy's DateTime stores it on SQLite (UTC wall time, no offset), for
    the hot inserts written straight through the driver: reads and range queries then agree."""
    tz = value.tzinfo
    if tz is not None:
        # Almost every time here is already UTC; converting it anyway cost a fifth of this call.
        value = (value if tz is UTC else value.astimezone(UTC)).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    # JSON columns go through orjson: the stdlib encoder was a visible share of intake CPU.
    json_opts: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, pool_size=8, max_overflow=8, connect_args={"timeout": 30}, **json_opts
        )
        _configure_sqlite(engine, settings.sqlite_synchronous)
        return engine
    try:
        return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, **json_opts)
    except Exception as exc:  # a malformed URL or missing driver
        raise ConfigError("database_url", str(exc).splitlines()[0]) from exc


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (needed for SAVEPOINT).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # No checkpoint inside a commit: copying the WAL into a 300 MB database file stalled the
        # writer for hundreds of milliseconds. The Checkpointer thread does it beside the writer.
        cur.execute("PRAGMA wal_autocheckpoint=0")
        # When the WAL starts over, a file that a burst grew past this is cut back to it (not by
        # the writer: it leaves that to the Checkpointer, see Writer._connect).
        cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY instead of waiting when another process (the CLI) writes at the same time.
        if conn.get_execution_options().get("casefold_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Processes starting together (an API and its workers) migrate one at a time; the
            # lock ends with the migration's transaction, and the next one finds nothing to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def refresh_statistics(engine: Engine) -> None:
    """Give SQLite's query planner fresh table statistics (PostgreSQL's autovacuum does its own).

    Without them SQLite guesses, and at 100,000 cases it guesses badly: a queue filtered by status
    and severity sorted 4,000 rows instead of walking the updated-at index for 50 (29 ms against
    1 ms). `analysis_limit` samples each index, so this takes milliseconds on any store size.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        analyzed = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ).first()
        # A store never analysed gets a full (sampled) ANALYZE; later, only what changed enough.
        conn.exec_driver_sql("PRAGMA optimize" if analyzed else "ANALYZE")
        conn.commit()


def schema_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


class Checkpointer:
    """Copies SQLite's WAL back into the database file from its own thread and connection.

    PASSIVE checkpoints never block the writer or readers; they run once the WAL has grown past
    `min_bytes`, checked every `interval` seconds. Under a steady stream of commits such a
    checkpoint never copies the very last frames, and SQLite rewinds the WAL only when all were
    copied; so when the WAL holds `restart_frames` or more and at most `writer_frames` of them
    are left uncopied, the writer is asked to copy those between two of its transactions
    (Writer.checkpoint_wal), and the WAL starts over. As that stalls the writer, it is asked at
    most every FINISH_INTERVAL_SECONDS while clients are quiet, or when the WAL reached
    `limit_frames` (256 MiB of 4 KiB pages: under a flood, one stall every several seconds).
    The writer then writes over the rewound file rather than cut it back; a WAL file larger
    than `truncate_bytes` is truncated by the next finish while clients are quiet.
    """

    def __init__(
        self,
        engine: Engine,
        db_path: Path,
        *,
        writer: Writer | None = None,
        interval: float = 1.0,
        min_bytes: int = 4 * 1024 * 1024,
        restart_frames: int = 1000,
        writer_frames: int = 256,
        limit_frames: int = 4 * WAL_SIZE_LIMIT // 4096,
        truncate_bytes: int = WAL_SIZE_LIMIT,
        statistics_interval: float = 3600.0,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._finishing: Future[Any] | None = None
        self._statistics_interval = statistics_interval
        self._statistics_at = time.monotonic()
        self._wal = Path(str(db_path) + "-wal")
        self._interval = interval
        self._min_bytes = min_bytes
        self._restart_frames = restart_frames
        self._writer_frames = writer_frames
        self._limit_frames = limit_frames
        self._truncate_bytes = truncate_bytes
        self._finished_at = -FINISH_INTERVAL_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="casefold-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=30)
            self.checkpoint()

    def checkpoint(self) -> tuple[int, int]:
        """One PASSIVE checkpoint; returns the frames in the WAL and how many are copied."""
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").first()
        return (int(row[1]), int(row[2])) if row is not None else (0, 0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._wal_bytes() >= self._min_bytes:
                    self._catch_up()
            except Exception as exc:  # a busy database is retried next round
                log.warning("WAL checkpoint failed: %s", exc)
            if time.monotonic() - self._statistics_at >= self._statistics_interval:
                self._statistics_at = time.monotonic()
                try:
                    refresh_statistics(self._engine)
                except Exception as exc:  # plans stay as they were; tried again next interval
                    log.warning("refreshing the query planner's statistics failed: %s", exc)

    def _catch_up(self) -> None:
        frames, copied = self.checkpoint()
        writer = self._writer
        if writer is None:
            return
        # Finishing stalls the writer for the copy and a sync of the database file (tens of
        # milliseconds on a busy disk), so it is rare: at most every FINISH_INTERVAL_SECONDS
        # once no client has written for a moment, or when the WAL reached `limit_frames`.
        now = time.monotonic()
        quiet = now - writer.last_foreground >= QUIET_SECONDS
        due = quiet and now - self._finished_at >= FINISH_INTERVAL_SECONDS
        # A file a flood grew and the writer rewound holds few frames but many bytes: it is cut
        # back once clients are quiet, whatever its frame count.
        oversized = self._wal_bytes() > self._truncate_bytes
        if frames < self._restart_frames and not (due and oversized):
            return
        if not due and frames < self._limit_frames:
            return
        # Each pass copies what was committed while the one before ran, so a few passes in a
        # row close in on the writer; only then is the writer asked for the rest, so that its
        # share stays small (copying a whole backlog there stalled it for 50 ms).
        for _ in range(CATCH_UP_PASSES):
            if frames - copied <= self._writer_frames:
                break
            frames, copied = self.checkpoint()
        else:
            return  # still behind (a reader's snapshot, or a flood): the next round goes on
        if self._finishing is None or self._finishing.done():  # one request at a time
            self._finished_at = now
            # While clients are quiet a WAL file a burst grew past the limit is cut to zero too;
            # under a flood the rewound file is written over again instead (see Writer._connect).
            self._finishing = writer.checkpoint_wal(truncate=due and oversized)

    def _wal_bytes(self) -> int:
        try:
            return self._wal.stat().st_size
        except FileNotFoundError:
            return 0


def dialect_insert(conn: Connection, table: Table) -> Insert:
    """INSERT with ON CONFLICT support (DO NOTHING / DO UPDATE) for the connection's database."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
