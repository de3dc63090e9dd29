"""The single writer: one thread runs every write, and writes queued together share a commit.

Group commit is what lets one SQLite file acknowledge thousands of alerts a second with a real
fsync per commit: requests that arrive while a commit is in flight are written by the next one.
A failing job never takes the others down: the group is then re-run job by job, each in its own
SAVEPOINT, so only the failing one rolls back. A caller's future resolves only after the commit
returned.

Jobs come in two classes. Foreground jobs (a client waits for them: intake, case changes) are
grouped and go first. Background jobs (folding, playbook bookkeeping, deliveries) run one at a
time in their own transaction when no foreground job is waiting, so a large fold never sits
between a sender and its acknowledgement; under a flood that never leaves the foreground lane
empty, one background job still gets a turn every BACKGROUND_TURN_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

log = logging.getLogger("casefold.writer")

T = TypeVar("T")
Job = Callable[[Connection], Any]
Entry = tuple[Job, "Future[Any]"]
SLOW_COMMIT_SECONDS = 0.02
# Under a flood that keeps the foreground lane full, a background job (a fold slice) still gets a
# turn this often: intake comes first, but folding never stops altogether.
BACKGROUND_TURN_SECONDS = 0.25
# SQLite page cache of the writer's connection, in KiB (SQLite's default is 2 MiB). Folding
# updates index pages all over the store (a case's observables, the alerts' case index); with the
# default cache most of those pages were read again from the OS for every batch. Only the writer
# gets it: readers' connections keep the default, so memory grows by this much once.
WRITER_CACHE_KIB = 16 * 1024


class Writer:
    def __init__(self, engine: Engine, *, max_group: int = 512) -> None:
        self._engine = engine
        self._max_group = max_group
        self._foreground: deque[Entry] = deque()
        self._background: deque[Entry] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.last_foreground = 0.0  # monotonic time of the latest foreground group
        self._relaxable = False  # SQLite with synchronous=FULL (see _commit_group)
        self._last_background = time.monotonic()

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="casefold-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, job: Callable[[Connection], T], *, background: bool = False) -> Future[T]:
        fut: Future[T] = Future()
        with self._cond:
            (self._background if background else self._foreground).append((job, fut))
            self._cond.notify()
        return fut

    def run(
        self,
        job: Callable[[Connection], T],
        timeout: float | None = 60,
        *,
        background: bool = False,
    ) -> T:
        """Run `job` in the writer and wait for its committed result (or its exception)."""
        return self.submit(job, background=background).result(timeout)

    def checkpoint_wal(self, *, truncate: bool = False) -> Future[tuple[int, int, int] | None]:
        """Finish a SQLite WAL checkpoint from the writer's own connection, between transactions.

        The Checkpointer thread copies the WAL into the database beside the writer, but under a
        steady stream of commits it never catches up with the last frames, and SQLite only
        rewinds the WAL to its start when every frame was copied: the WAL then grew by about
        30 MB a second at 500 single-alert requests/s, and every page read searched a longer WAL
        index. Here no commit can land meanwhile, so the few frames left are copied and the next
        transaction rewinds the WAL.
        With `truncate`, the WAL file is also cut to zero bytes, unless a reader still reads from
        it (then busy is 1 and nothing waits for that reader).
        Returns SQLite's (busy, frames in the WAL, frames copied), or None off SQLite.
        """
        return self.submit(_WalCheckpoint(truncate), background=True)

    @property
    def busy(self) -> bool:
        """True while foreground work is waiting (background producers may back off)."""
        return bool(self._foreground)

    def _next_group(self) -> list[Entry] | None:
        with self._cond:
            while not self._foreground and not self._background:
                if self._stopping:
                    return None
                self._cond.wait()
            now = time.monotonic()
            if self._background and (
                not self._foreground or now - self._last_background > BACKGROUND_TURN_SECONDS
            ):
                self._last_background = now
                return [self._background.popleft()]
            self.last_foreground = now
            group: list[Entry] = []
            while self._foreground and len(group) < self._max_group:
                group.append(self._foreground.popleft())
            return group

    def _run(self) -> None:
        conn = self._connect()
        try:
            while (group := self._next_group()) is not None:
                started = time.perf_counter()
                conn = self._commit_group(conn, group)
                elapsed = time.perf_counter() - started
                if elapsed > SLOW_COMMIT_SECONDS:
                    log.debug(
                        "slow write transaction: %.0f ms for %d job(s), first %s",
                        elapsed * 1000,
                        len(group),
                        getattr(group[0][0], "__qualname__", type(group[0][0]).__name__),
                    )
        finally:
            conn.close()

    def _commit_group(self, conn: Connection, group: list[Entry]) -> Connection:
        group = [(job, fut) for job, fut in group if fut.set_running_or_notify_cancel()]
        if not group:
            return conn
        if isinstance(group[0][0], _WalCheckpoint):  # alone: it comes from the background lane
            job, fut = group[0]
            try:
                fut.set_result(job(conn))
            except Exception as exc:  # a busy database: the next pass tries again
                fut.set_exception(exc)
                return self._reconnect_if_broken(conn)
            return conn
        if self._relaxable and not any(getattr(job, "durable", True) for job, _ in group):
            # Jobs marked `durable = False` (the tailer's batches: alerts.json is the durable
            # copy, and its checkpoint commits with them) skip the fsync. A power cut can undo
            # the last of them, checkpoint and alerts together; the next durable commit, or a
            # checkpoint, makes them durable. A fifth of the tailer's time was this fsync.
            _synchronous(conn, "NORMAL")
            try:
                return self._commit_jobs(conn, group)
            finally:
                if not conn.closed and not conn.invalidated:
                    _synchronous(conn, "FULL")
        return self._commit_jobs(conn, group)

    def _commit_jobs(self, conn: Connection, group: list[Entry]) -> Connection:
        try:
            # Fast path: every job in one transaction, no savepoints (they cost a tenth of the
            # writer's time). If any job fails, nothing was committed and the slow path below
            # re-runs each job in its own savepoint; jobs only touch the database, so running one
            # again after a rollback is safe.
            with conn.begin():
                results = [job(conn) for job, _fut in group]
        except Exception as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return self._reconnect_if_broken(conn)
            return self._commit_one_by_one(self._reconnect_if_broken(conn), group)
        for (_job, fut), value in zip(group, results, strict=True):
            fut.set_result(value)
        return conn

    def _commit_one_by_one(self, conn: Connection, group: list[Entry]) -> Connection:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            with conn.begin():
                for job, fut in group:
                    try:
                        with conn.begin_nested():
                            outcomes.append((fut, True, job(conn)))
                    except Exception as exc:  # the job's own failure: only it is rolled back
                        outcomes.append((fut, False, exc))
        except Exception as exc:  # the commit itself failed: nothing in this group was written
            log.error("write transaction failed: %s", exc)
            for _job, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            return self._reconnect_if_broken(conn)
        for fut, ok, value in outcomes:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        return conn

    def _reconnect_if_broken(self, conn: Connection) -> Connection:
        if not conn.invalidated and not conn.closed:
            return conn
        try:
            conn.close()
        finally:
            conn = self._connect()
        return conn

    def _connect(self) -> Connection:
        conn = self._engine.connect().execution_options(casefold_write=True)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            # The commit that rewinds the WAL would cut the file back to journal_size_limit: a
            # 70-130 ms ftruncate of a 256 MiB WAL inside some client's acknowledgement. The
            # writer reuses the file instead; the Checkpointer truncates it while clients are
            # quiet (checkpoint_wal(truncate=True)).
            conn.exec_driver_sql("PRAGMA journal_size_limit = -1")
            # 2 is FULL: only then is there an fsync for non-durable jobs to skip.
            self._relaxable = conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            conn.commit()  # ends the implicit transaction SQLAlchemy began for the PRAGMAs
        return conn


class _WalCheckpoint:
    """PRAGMA wal_checkpoint outside any transaction (SQLite refuses one inside)."""

    def __init__(self, truncate: bool = False) -> None:
        self.truncate = truncate

    def __call__(self, conn: Connection) -> tuple[int, int, int] | None:
        if conn.dialect.name != "sqlite":
            return None
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        if not self.truncate:
            busy, frames, copied = dbapi.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return busy, frames, copied
        # TRUNCATE waits, through the busy handler, for readers still on the WAL; a long read
        # must not hold the writer, so it gives up at once and the next quiet moment tries again.
        timeout = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
        dbapi.execute("PRAGMA busy_timeout = 0")
        try:
            busy, frames, copied = dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            dbapi.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        return busy, frames, copied


def _synchronous(conn: Connection, mode: str) -> None:
    # Straight to the driver (in autocommit between transactions): through SQLAlchemy the PRAGMA
    # would open one.
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA synchronous = {mode}")
